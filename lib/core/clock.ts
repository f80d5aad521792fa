/** A source of the current time; tests may pass a fixed one. */
export type Clock = () => Date;

/** Wakes workers when a job is queued in this process (others poll). */
export interface JobSignal {
  notify(): void;
}

/** One container the upload accepts, as a client can recognise it before uploading. */
export interface AcceptedFormat {
  /** The `container` an Attachment reports for it. */
  container: "mp4" | "mov" | "webm" | "mkv" | "ogg" | "avi";
  label: string;
  mime_types: string[];
  extensions: string[];
}

/**
 * The containers `lib/media/sniff.ts` accepts, described for clients so they
 * can say what is accepted before an upload starts. The server still decides
 * by the file's content: a name or type here is only a hint.
 */
export const ACCEPTED_FORMATS: readonly AcceptedFormat[] = [
  { container: "mp4", label: "MP4", mime_types: ["video/mp4"], extensions: ["mp4", "m4v"] },
  {
    container: "mov",
    label: "QuickTime MOV",
    mime_types: ["video/quicktime"],
    extensions: ["mov", "qt"],
  },
  { container: "webm", label: "WebM", mime_types: ["video/webm"], extensions: ["webm"] },
  {
    container: "mkv",
    label: "Matroska MKV",
    mime_types: ["video/x-matroska"],
    extensions: ["mkv"],
  },
  { container: "ogg", label: "Ogg", mime_types: ["video/ogg"], extensions: ["ogv", "ogg"] },
  {
    container: "avi",
    label: "AVI",
    mime_types: ["video/x-msvideo", "video/avi", "video/msvideo"],
    extensions: ["avi"],
  },
];

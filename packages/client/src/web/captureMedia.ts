/**
 * Opening the camera and microphone: both when possible, the microphone alone when there is
 * no camera, nothing at all (watch only) when neither can be had. Each fallback is told to the
 * user through `notice`.
 */
import { SignalError } from '../core/SignalClient.js';

/**
 * 1280x720 when the camera allows (Chromium's fake device does): the top simulcast layer is the
 * capture itself, and its quarter (320x180) is still a usable picture for small tiles.
 */
const VIDEO: MediaTrackConstraints = {
  width: { ideal: 1280 },
  height: { ideal: 720 },
  frameRate: { ideal: 24, max: 30 },
};

/** A failure as the user reads it. */
export function errorText(error: unknown): string {
  if (error instanceof SignalError) return `${error.message} (${error.code})`;
  if (error instanceof DOMException && error.name === 'NotAllowedError') {
    return 'Camera and microphone access was denied.';
  }
  return error instanceof Error ? error.message : String(error);
}

export async function captureMedia(
  notice: (level: 'warn', text: string) => void,
): Promise<MediaStream | null> {
  if (!navigator.mediaDevices?.getUserMedia) {
    notice('warn', 'This browser cannot capture media here (it needs https or localhost).');
    return null;
  }
  try {
    return await navigator.mediaDevices.getUserMedia({ audio: true, video: VIDEO });
  } catch (error) {
    // No camera, or the camera is busy: try the microphone alone, then nothing at all.
    try {
      const audioOnly = await navigator.mediaDevices.getUserMedia({ audio: true });
      notice('warn', `No camera (${errorText(error)}). Joining with microphone only.`);
      return audioOnly;
    } catch {
      notice('warn', `No camera or microphone (${errorText(error)}). Joining to watch only.`);
      return null;
    }
  }
}

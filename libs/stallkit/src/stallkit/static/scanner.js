// Reads a stall's QR code with the phone's camera.
//
// The browser's BarcodeDetector where it has one that reads QR codes (Android Chrome), otherwise
// jsQR (vendored, loaded as a classic script before this module: window.jsQR) on a downscaled
// frame a few times a second. The camera is released as soon as a code is read or the scanner
// is stopped. The pages offer typing the code's text as well, for a phone without a camera or
// a code too worn to read.

const FRAME_WIDTH = 640; // decoding a larger frame costs time and reads no better
const INTERVAL_MS = 150;

export class Scanner {
  /**
   * @param {HTMLVideoElement} video where the camera picture is shown
   * @param {{onCode: (text: string) => void, onError: (error: Error) => void}} handlers
   */
  constructor(video, handlers) {
    this.video = video;
    this.handlers = handlers;
    this.stream = null;
    this.timer = null;
    this.detector = null;
    this.canvas = document.createElement("canvas");
  }

  get running() {
    return this.stream !== null;
  }

  static available() {
    return Boolean(navigator.mediaDevices && navigator.mediaDevices.getUserMedia);
  }

  async start() {
    if (this.running) return;
    if (!Scanner.available()) throw new Error("camera_unavailable");
    this.detector = await qrDetector();
    if (!this.detector && typeof window.jsQR !== "function") throw new Error("decoder_missing");
    this.stream = await navigator.mediaDevices.getUserMedia({
      audio: false,
      video: { facingMode: { ideal: "environment" }, width: { ideal: 1280 } },
    });
    this.video.srcObject = this.stream;
    this.video.setAttribute("playsinline", "");
    this.video.muted = true;
    await this.video.play();
    this.schedule();
  }

  stop() {
    clearTimeout(this.timer);
    this.timer = null;
    if (this.stream) {
      for (const track of this.stream.getTracks()) track.stop();
    }
    this.stream = null;
    this.video.srcObject = null;
  }

  schedule() {
    this.timer = setTimeout(() => this.tick(), INTERVAL_MS);
  }

  async tick() {
    if (!this.running) return;
    let text = null;
    try {
      text = await this.decode();
    } catch (error) {
      this.stop();
      this.handlers.onError(error);
      return;
    }
    if (!this.running) return;
    if (text) {
      this.stop();
      this.handlers.onCode(text);
    } else {
      this.schedule();
    }
  }

  async decode() {
    const video = this.video;
    if (video.readyState < 2 || !video.videoWidth) return null;
    if (this.detector) {
      const found = await this.detector.detect(video);
      return found.length ? found[0].rawValue : null;
    }
    const scale = Math.min(1, FRAME_WIDTH / video.videoWidth);
    const width = Math.round(video.videoWidth * scale);
    const height = Math.round(video.videoHeight * scale);
    this.canvas.width = width;
    this.canvas.height = height;
    const context = this.canvas.getContext("2d", { willReadFrequently: true });
    context.drawImage(video, 0, 0, width, height);
    const frame = context.getImageData(0, 0, width, height);
    const code = window.jsQR(frame.data, width, height, { inversionAttempts: "dontInvert" });
    return code && code.data ? code.data : null;
  }
}

async function qrDetector() {
  if (!("BarcodeDetector" in window)) return null;
  try {
    const formats = await window.BarcodeDetector.getSupportedFormats();
    return formats.includes("qr_code") ? new window.BarcodeDetector({ formats: ["qr_code"] }) : null;
  } catch {
    return null;
  }
}

// jsdom has no 2D canvas: give canvases a minimal context that keeps the last painted
// ImageData on the element, so tests can read the pixels the views paint.
// (The real canvas is exercised in Chromium by the end-to-end test.)
interface Painted extends HTMLCanvasElement {
  painted?: { data: Uint8ClampedArray; width: number; height: number };
}

HTMLCanvasElement.prototype.getContext = function (this: Painted) {
  return {
    createImageData: (width: number, height: number) => ({ data: new Uint8ClampedArray(width * height * 4), width, height }),
    putImageData: (img: { data: Uint8ClampedArray; width: number; height: number }) => {
      this.painted = img;
    },
  };
} as unknown as typeof HTMLCanvasElement.prototype.getContext;

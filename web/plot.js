// A small live plot on a canvas: frames per second (a line) and, for each group, the delay
// between the group stream's arrival and its first frame (dots), over the last minute.

/** How many one-second buckets the plot spans. */
const SECONDS = 60;

export class Plot {
  #canvas;
  #rates = []; // frames per completed second, oldest first
  #current = 0; // frames in the second being counted
  #delays = []; // { at: seconds since start, ms }
  #start = performance.now();
  #timer;

  constructor(canvas) {
    this.#canvas = canvas;
    this.#timer = setInterval(() => this.#tick(), 1000);
    this.#draw();
  }

  /** Stops updating (when the subscription changes). */
  stop() {
    clearInterval(this.#timer);
  }

  /** Counts one frame. */
  frame() {
    this.#current++;
  }

  /** Records a group's first-frame delay in milliseconds. */
  firstFrameDelay(ms) {
    this.#delays.push({ at: (performance.now() - this.#start) / 1000, ms });
    if (this.#delays.length > SECONDS * 4) this.#delays.shift();
  }

  #tick() {
    this.#rates.push(this.#current);
    this.#current = 0;
    if (this.#rates.length > SECONDS) this.#rates.shift();
    this.#draw();
  }

  #draw() {
    const ctx = this.#canvas.getContext("2d");
    const { width, height } = this.#canvas;
    const pad = 24;
    ctx.clearRect(0, 0, width, height);
    ctx.font = "11px sans-serif";
    ctx.fillStyle = "#888";
    const maxRate = Math.max(2, ...this.#rates);
    const maxDelay = Math.max(10, ...this.#delays.map((d) => d.ms));
    ctx.fillText(`${maxRate} fps`, 2, 11);
    ctx.fillText(`${Math.round(maxDelay)} ms`, width - 50, 11);
    ctx.fillText(`last ${SECONDS} s`, 2, height - 4);
    const x = (i) => pad + ((width - 2 * pad) * i) / (SECONDS - 1);
    const y = (v, max) => height - pad - ((height - 2 * pad) * v) / max;

    ctx.strokeStyle = "#2c5ea8";
    ctx.lineWidth = 2;
    ctx.beginPath();
    const offset = SECONDS - this.#rates.length;
    this.#rates.forEach((rate, i) => (i === 0 ? ctx.moveTo : ctx.lineTo).call(ctx, x(offset + i), y(rate, maxRate)));
    ctx.stroke();

    ctx.fillStyle = "#c0392b";
    const now = (performance.now() - this.#start) / 1000;
    for (const { at, ms } of this.#delays) {
      const age = now - at;
      if (age > SECONDS) continue;
      ctx.beginPath();
      ctx.arc(x(SECONDS - 1 - age), y(ms, maxDelay), 3, 0, 2 * Math.PI);
      ctx.fill();
    }
  }
}

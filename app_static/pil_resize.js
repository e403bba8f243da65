// Pillow's image resizing, re-implemented for the browser so the in-browser sketch sees exactly the pixels the
// Python pipeline sees (photosketch/pipeline.py: `img.resize(work, LANCZOS, reducing_gap=3.0)` when shrinking,
// `img.resize(target, BICUBIC)` when enlarging the result). Ported from Pillow 12's src/libImaging/Resample.c
// (separable filter, coefficients in 22-bit fixed point, 8-bit rounding after each pass) and Reduce.c (box
// averaging before the filter when shrinking by 3x or more); tests/test_browser.py checks it against PIL.
//
// Images are Uint8 arrays of interleaved pixels: `stride` bytes a pixel (4 for canvas RGBA), of which the first
// `channels` are used. Results are packed (stride == channels).

const PRECISION_BITS = 32 - 8 - 2;
const HALF = 2 ** (PRECISION_BITS - 1);
const ONE = 2 ** PRECISION_BITS;

function sinc(x) {
  if (x === 0.0) return 1.0;
  x *= Math.PI;
  return Math.sin(x) / x;
}

export const FILTERS = {
  lanczos: { support: 3.0, fn: (x) => (x >= -3.0 && x < 3.0 ? sinc(x) * sinc(x / 3) : 0.0) },
  bicubic: {
    support: 2.0,
    fn: (x) => {
      const a = -0.5;
      if (x < 0.0) x = -x;
      if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
      if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
      return 0.0;
    },
  },
};

// Resample.c precompute_coeffs + normalize_coeffs_8bpc. in0 / in1 are C floats (the box), hence Math.fround.
const CACHE = new Map();
function coefficients(inSize, in0, in1, outSize, filter) {
  const key = `${inSize},${in0},${in1},${outSize},${filter.support}`;
  let hit = CACHE.get(key);
  if (!hit) {
    if (CACHE.size > 16) CACHE.clear();
    hit = computeCoefficients(inSize, in0, in1, outSize, filter);
    CACHE.set(key, hit);
  }
  return hit;
}

function computeCoefficients(inSize, in0, in1, outSize, filter) {
  in0 = Math.fround(in0);
  in1 = Math.fround(in1);
  const scale = Math.fround(in1 - in0) / outSize;
  const filterscale = scale < 1.0 ? 1.0 : scale;
  const support = filter.support * filterscale;
  const ksize = Math.ceil(support) * 2 + 1;
  const bounds = new Int32Array(outSize * 2);
  const kk = new Float64Array(outSize * ksize);
  const ss = 1.0 / filterscale;
  for (let xx = 0; xx < outSize; xx++) {
    const center = in0 + (xx + 0.5) * scale;
    let xmin = Math.trunc(center - support + 0.5);
    if (xmin < 0) xmin = 0;
    let xmax = Math.trunc(center + support + 0.5);
    if (xmax > inSize) xmax = inSize;
    xmax -= xmin;
    let ww = 0.0;
    for (let x = 0; x < xmax; x++) {
      const w = filter.fn((x + xmin - center + 0.5) * ss);
      kk[xx * ksize + x] = w;
      ww += w;
    }
    for (let x = 0; x < xmax; x++) if (ww !== 0.0) kk[xx * ksize + x] /= ww;
    bounds[xx * 2] = xmin;
    bounds[xx * 2 + 1] = xmax;
  }
  const fixed = new Int32Array(kk.length);
  for (let i = 0; i < kk.length; i++) fixed[i] = Math.trunc(kk[i] < 0 ? -0.5 + kk[i] * ONE : 0.5 + kk[i] * ONE);
  return { ksize, bounds, k: fixed };
}

// (sum + 2^21) >> 22, clipped to 0..255 (Resample.c clip8). Sums stay well inside float64's exact integers.
function clip8(ss) {
  const v = ss >> PRECISION_BITS;
  return v < 0 ? 0 : v > 255 ? 255 : v;
}

// Resample.c ImagingResampleInner: horizontal pass over the rows the vertical pass needs, then vertical.
function resampleBox(src, w, h, stride, channels, outW, outH, filter, box) {
  const needH = outW !== w || box[0] !== 0 || box[2] !== outW;
  const needV = outH !== h || box[1] !== 0 || box[3] !== outH;
  const vert = coefficients(h, box[1], box[3], outH, filter);
  let img = src, imgW = w, imgStride = stride, rowOffset = 0;
  if (needH) {
    const hor = coefficients(w, box[0], box[2], outW, filter);
    const first = vert.bounds[0];
    const last = vert.bounds[outH * 2 - 2] + vert.bounds[outH * 2 - 1];
    const tmp = new Uint8Array(outW * (last - first) * channels);
    const { ksize, bounds, k } = hor;
    for (let yy = 0; yy < last - first; yy++) {
      const row = (yy + first) * w * stride;
      for (let xx = 0; xx < outW; xx++) {
        const xmin = bounds[xx * 2], xmax = bounds[xx * 2 + 1], kb = xx * ksize, o = (yy * outW + xx) * channels;
        if (channels === 3) {  // the live path: one walk over the pixels for all three channels
          let s0 = HALF, s1 = HALF, s2 = HALF;
          for (let x = 0, p = row + xmin * stride; x < xmax; x++, p += stride) {
            const kx = k[kb + x];
            s0 += src[p] * kx;
            s1 += src[p + 1] * kx;
            s2 += src[p + 2] * kx;
          }
          tmp[o] = clip8(s0); tmp[o + 1] = clip8(s1); tmp[o + 2] = clip8(s2);
          continue;
        }
        for (let c = 0; c < channels; c++) {
          let ss = HALF;
          for (let x = 0, p = row + xmin * stride + c; x < xmax; x++, p += stride) ss += src[p] * k[kb + x];
          tmp[o + c] = clip8(ss);
        }
      }
    }
    img = tmp; imgW = outW; imgStride = channels; rowOffset = first;
  }
  const out = new Uint8Array(outW * outH * channels);
  if (needV) {
    const { ksize, bounds, k } = vert;
    const rowLen = imgW * imgStride;
    for (let yy = 0; yy < outH; yy++) {
      const ymin = bounds[yy * 2] - rowOffset, ymax = bounds[yy * 2 + 1], kb = yy * ksize;
      for (let xx = 0; xx < imgW; xx++) {
        const o = (yy * imgW + xx) * channels;
        if (channels === 3) {
          let s0 = HALF, s1 = HALF, s2 = HALF;
          for (let y = 0, p = ymin * rowLen + xx * imgStride; y < ymax; y++, p += rowLen) {
            const ky = k[kb + y];
            s0 += img[p] * ky;
            s1 += img[p + 1] * ky;
            s2 += img[p + 2] * ky;
          }
          out[o] = clip8(s0); out[o + 1] = clip8(s1); out[o + 2] = clip8(s2);
          continue;
        }
        for (let c = 0; c < channels; c++) {
          let ss = HALF;
          for (let y = 0, p = ymin * rowLen + xx * imgStride + c; y < ymax; y++, p += rowLen) ss += img[p] * k[kb + y];
          out[o + c] = clip8(ss);
        }
      }
    }
  } else {
    for (let i = 0, n = outW * outH; i < n; i++) {
      for (let c = 0; c < channels; c++) out[i * channels + c] = img[i * imgStride + c];
    }
  }
  return out;
}

// Reduce.c: each output pixel is the rounded mean of its fx x fy block (partial blocks at the right and bottom
// edges average the pixels they have); the mean is taken as (sum + n/2) * floor(2^24 / n) >> 24, as Pillow does.
export function reduce(src, w, h, stride, channels, fx, fy) {
  const outW = Math.ceil(w / fx), outH = Math.ceil(h / fy);
  const out = new Uint8Array(outW * outH * channels);
  const sums = new Float64Array(channels);
  for (let y = 0; y < outH; y++) {
    const y0 = y * fy, y1 = Math.min(h, y0 + fy);
    for (let x = 0; x < outW; x++) {
      const x0 = x * fx, x1 = Math.min(w, x0 + fx);
      const n = (y1 - y0) * (x1 - x0);
      const multiplier = Math.trunc(Math.fround(2 ** 32 / Math.fround(256 * n)));
      sums.fill(Math.floor(n / 2));
      for (let yy = y0; yy < y1; yy++) {
        for (let xx = x0; xx < x1; xx++) {
          const p = (yy * w + xx) * stride;
          for (let c = 0; c < channels; c++) sums[c] += src[p + c];
        }
      }
      for (let c = 0; c < channels; c++) out[(y * outW + x) * channels + c] = Math.floor((sums[c] * multiplier) / 2 ** 24);
    }
  }
  return { data: out, width: outW, height: outH };
}

// PIL's Image.resize(size, filter, reducing_gap=gap) for a whole image (box = the full image).
export function resize(src, w, h, stride, channels, outW, outH, filter = "lanczos", reducingGap = null) {
  if (outW === w && outH === h) {
    const out = new Uint8Array(w * h * channels);
    for (let i = 0; i < w * h; i++) for (let c = 0; c < channels; c++) out[i * channels + c] = src[i * stride + c];
    return out;
  }
  let box = [0, 0, w, h];
  if (reducingGap !== null) {
    const fx = Math.trunc(w / outW / reducingGap) || 1;
    const fy = Math.trunc(h / outH / reducingGap) || 1;
    if (fx > 1 || fy > 1) {
      // Pillow's _get_safe_box is the whole image here (the box is the whole image), so reduce it all.
      const r = reduce(src, w, h, stride, channels, fx, fy);
      box = [0, 0, w / fx, h / fy];
      return resampleBox(r.data, r.width, r.height, channels, channels, outW, outH, FILTERS[filter], box);
    }
  }
  return resampleBox(src, w, h, stride, channels, outW, outH, FILTERS[filter], box);
}

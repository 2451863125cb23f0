// segment.cu -- mean-shift filtering of an image in the joint spatial-range
// domain (gpumeanshift.segmentation.mean_shift_filter, OpenCV's
// pyrMeanShiftFiltering at maxLevel=0).
//
// ms_filter_image<W, CH>
//   1-D grid, ceil(height * width / blockDim.x) blocks of 128 threads, one
//   thread per pixel, no shared memory: each pixel's window is the patch of
//   the pixel grid [rint(x - sp), rint(x + sp)] x [rint(y - sp), rint(y + sp)]
//   around its current integer position, clipped to the image, restricted to
//   the pixels whose original colour is within the range radius of the
//   pixel's current colour. The image (height x width x CH, type W) is read
//   through the cache: neighbouring threads read overlapping patches. All
//   max_iter iterations run in one launch; `colour` (double, in/out) starts as
//   the image's colours and ends as each pixel's mode colour.
//   The float operations repeat the NumPy path's, in its order (rows, then
//   columns; channel sums in W, the means in double) and unfused
//   (ms_mul_rn / ms_add_rn), so results agree exactly.
#include "common.cuh"

__device__ __forceinline__ float ms_rint(float x) { return rintf(x); }
__device__ __forceinline__ double ms_rint(double x) { return rint(x); }
__device__ __forceinline__ double ms_abs(double x) { return x < 0.0 ? -x : x; }

// 8 (float) / 4 (double) resident blocks asked of ptxas: <= 64 / 128 registers.
template <typename W, int CH>
__global__ void __launch_bounds__(MS_MAX_BLOCK, MS_MIN_BLOCKS(W, CH))
ms_filter_image(const W* __restrict__ img, int height, int width, float sp, W threshold,
                int max_iter, double eps, int round_colors, double* __restrict__ colour) {
    const long long pix = (long long)blockIdx.x * blockDim.x + threadIdx.x;
    if (pix >= (long long)height * width) return;  // no barrier in this kernel
    int y = (int)(pix / width);
    int x = (int)(pix % width);
    double c[CH];
#pragma unroll
    for (int ch = 0; ch < CH; ++ch) c[ch] = colour[pix * CH + ch];
    for (int iter = 0; iter < max_iter; ++iter) {
        W cw[CH];
#pragma unroll
        for (int ch = 0; ch < CH; ++ch) cw[ch] = (W)c[ch];
        // OpenCV's cvRound(pos -/+ sp) in float, clipped to the image.
        int x0 = (int)ms_rint((float)x - sp), x1 = (int)ms_rint((float)x + sp);
        int y0 = (int)ms_rint((float)y - sp), y1 = (int)ms_rint((float)y + sp);
        x0 = x0 < 0 ? 0 : x0;
        y0 = y0 < 0 ? 0 : y0;
        x1 = x1 > width - 1 ? width - 1 : x1;
        y1 = y1 > height - 1 ? height - 1 : y1;
        W sums[CH];
#pragma unroll
        for (int ch = 0; ch < CH; ++ch) sums[ch] = W(0);
        long long cnt = 0, sdx = 0, sdy = 0;  // integers: exact in any order
        for (int yy = y0; yy <= y1; ++yy) {
            const W* rowp = img + (long long)yy * width * CH;
            for (int xx = x0; xx <= x1; ++xx) {
                const W* px = rowp + (long long)xx * CH;
                W t[CH];
                W d2 = W(0);
#pragma unroll
                for (int ch = 0; ch < CH; ++ch) {
                    t[ch] = px[ch];
                    const W diff = t[ch] - cw[ch];
                    const W sq = ms_mul_rn(diff, diff);
                    d2 = ch == 0 ? sq : ms_add_rn(d2, sq);
                }
                if (d2 <= threshold) {
#pragma unroll
                    for (int ch = 0; ch < CH; ++ch) sums[ch] = ms_add_rn(sums[ch], t[ch]);
                    ++cnt;
                    sdx += xx - x;
                    sdy += yy - y;
                }
            }
        }
        if (cnt == 0) break;  // nothing within range: the pixel stays
        const double n = (double)cnt;
        const double inv = 1.0 / n;
        const double nx = ms_rint(ms_mul_rn(ms_add_rn(ms_mul_rn(n, (double)x), (double)sdx), inv));
        const double ny = ms_rint(ms_mul_rn(ms_add_rn(ms_mul_rn(n, (double)y), (double)sdy), inv));
        double moved = ms_add_rn(ms_abs(nx - x), ms_abs(ny - y));
        double dc = 0.0;
#pragma unroll
        for (int ch = 0; ch < CH; ++ch) {
            double v = ms_mul_rn((double)sums[ch], inv);
            if (round_colors) v = ms_rint(v);
            const double diff = v - c[ch];
            const double sq = ms_mul_rn(diff, diff);
            dc = ch == 0 ? sq : ms_add_rn(dc, sq);
            c[ch] = v;
        }
        moved = ms_add_rn(moved, dc);
        const bool still = nx == (double)x && ny == (double)y;
        x = (int)nx;
        y = (int)ny;
        if (still || moved <= eps) break;
    }
#pragma unroll
    for (int ch = 0; ch < CH; ++ch) colour[pix * CH + ch] = c[ch];
}

// track.cu -- batched mean-shift window tracking (cv2.meanShift semantics,
// gpumeanshift.tracking.mean_shift_track).
//
// ms_track_windows<P, A>
//   1-D grid, ceil(k / blockDim.x) blocks of 128 threads, one thread per
//   window, no shared memory, no barrier: every window iterates on its own
//   (all n_iter iterations in one launch). Per iteration the thread sums the
//   raw moments m00, m10, m01 of the image (type P, summed in A: long long
//   for integer images, exactly as OpenCV's integer moments; double for float
//   images) over its window clipped to the image, then moves the window by
//   the rounded offset of the centre of mass, clamped to the image, with
//   OpenCV's stopping rules. For many small windows; a few large windows
//   would want one block per window and a block reduction instead.
#include "common.cuh"

template <typename P, typename A>
__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
ms_track_windows(const P* __restrict__ img, int height, int width,
                 long long* __restrict__ windows, int k, int n_iter, double eps2,
                 long long* __restrict__ iters) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= k) return;
    long long* win = windows + (long long)i * 4;
    long long cx = win[0], cy = win[1], cw = win[2], ch = win[3];
    // Half size of the initial window clipped to the image (OpenCV's constant).
    double half_w, half_h;
    {
        const long long x0 = cx > 0 ? cx : 0, y0 = cy > 0 ? cy : 0;
        const long long x1 = cx + cw < width ? cx + cw : width;
        const long long y1 = cy + ch < height ? cy + ch : height;
        const bool empty = x1 - x0 <= 0 || y1 - y0 <= 0;
        half_w = empty ? 0.0 : (double)(x1 - x0) * 0.5;
        half_h = empty ? 0.0 : (double)(y1 - y0) * 0.5;
    }
    long long done = n_iter;
    for (int it = 0; it < n_iter; ++it) {
        // r = cur & Rect(0, 0, width, height); empty -> centred 1 x 1 window
        long long rx = cx > 0 ? cx : 0, ry = cy > 0 ? cy : 0;
        const long long x1 = cx + cw < width ? cx + cw : width;
        const long long y1 = cy + ch < height ? cy + ch : height;
        long long rw = x1 - rx, rh = y1 - ry;
        if (rw <= 0 || rh <= 0) {
            rx = width / 2;
            ry = height / 2;
            rw = 1;
            rh = 1;
        }
        cx = rx;
        cy = ry;
        cw = rw;
        ch = rh;
        A m00 = A(0), m10 = A(0), m01 = A(0);
        for (long long oy = 0; oy < rh; ++oy) {
            const P* row = img + (ry + oy) * (long long)width + rx;
            A rsum = A(0);
            for (long long ox = 0; ox < rw; ++ox) {
                const A v = (A)row[ox];
                rsum += v;
                m10 += v * (A)ox;
            }
            m00 += rsum;
            m01 += rsum * (A)oy;
        }
        const double M00 = (double)m00;
        const bool massless = (M00 < 0.0 ? -M00 : M00) < 2.220446049250313e-16;
        long long dx = 0, dy = 0;
        if (!massless) {
            dx = (long long)rint((double)m10 / M00 - half_w);
            dy = (long long)rint((double)m01 / M00 - half_h);
        }
        long long nx = rx + dx, ny = ry + dy;
        nx = nx > 0 ? nx : 0;
        ny = ny > 0 ? ny : 0;
        nx = nx < width - rw ? nx : width - rw;
        ny = ny < height - rh ? ny : height - rh;
        dx = nx - rx;
        dy = ny - ry;
        if (!massless) {
            cx = nx;
            cy = ny;
        }
        if (massless || (double)(dx * dx + dy * dy) < eps2) {
            done = it;
            break;
        }
    }
    win[0] = cx;
    win[1] = cy;
    win[2] = cw;
    win[3] = ch;
    iters[i] = done;
}

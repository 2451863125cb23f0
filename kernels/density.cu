// density.cu -- log kernel density at query points, no n x m matrix.
//
// log_kernel_density<T, D, KERNEL>
//   1-D grid, ceil(m / blockDim.x) blocks of 128 threads, one thread per
//   query (its row in registers when D > 0). The data stream through dynamic
//   shared memory in tiles of `tile` rows (shared bytes = tile * d *
//   sizeof(T)), loaded coalesced by the whole block, as in neighbors.cu.
//   Gaussian: X and Q centered and divided by the bandwidth on the host; the
//   thread keeps an online log-sum-exp of e_j = -|q - x_j|^2 / 2: a running
//   maximum mx and s = sum_j exp(e_j - mx), rescaled when a larger exponent
//   arrives, so far queries never underflow to log(0): out = mx + log(s).
//   Flat: raw coordinates, out = log(#{j : |q - x_j|^2 <= r2}) (-inf if none).
//   The result is written as double.
//   WEIGHTED (template flag, default false): rows carry their weight w_j as
//   a last column (common.cuh); the Gaussian's terms become
//   w_j exp(e_j - mx) (mx the largest exponent, so s >= the weight of that
//   term: no underflow to 0), flat sums w_j in double. Rows of weight 0
//   never reach the kernel (the host drops them).
#include "common.cuh"

template <typename T>
struct ms_limits;
template <>
struct ms_limits<float> {
    static __device__ __forceinline__ float max() { return 3.402823466e38f; }
};
template <>
struct ms_limits<double> {
    static __device__ __forceinline__ double max() { return 1.7976931348623157e308; }
};

template <typename T, int D, int KERNEL, bool W = false>
__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
log_kernel_density(const T* __restrict__ X, int n, const T* __restrict__ Q, int m, int d,
                   int tile, T r2, double* __restrict__ out) {
    MS_DYNAMIC_SHARED(T, sh);
    const int dd = D > 0 ? D : d;
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    const bool valid = row < m;
    T reg[D > 0 ? D : 1];
    const T* q = ms_query<T, D>(Q, row, valid, dd, reg);
    T mx = T(0);
    T s = T(0);  // 0 until the first term: then mx is that term's exponent
    typename ms_count<double, W>::type cnt = 0;  // int, or summed weights
    const int stride = W ? dd + 1 : dd;
    ms_for_tiles(sh, X, 0, n, tile, stride, valid, [&](long long, int rows) {
        for (int r = 0; r < rows; ++r) {
            const T* x = sh + r * stride;
            const T u2 = ms_dist2<T, D>(q, x, dd);
            if (KERNEL == MS_FLAT) {
                if constexpr (W) cnt += u2 <= r2 ? (double)x[dd] : 0.0;
                else cnt += u2 <= r2 ? 1 : 0;
            } else {
                // finite even when the squared distance overflowed
                const T e = T(-0.5) * (u2 < ms_limits<T>::max() ? u2 : ms_limits<T>::max());
                if constexpr (W) {
                    const T w = x[dd];  // > 0
                    if (s == T(0)) {
                        mx = e;
                        s = w;
                    } else if (e > mx) {
                        s = s * ms_exp(mx - e) + w;
                        mx = e;
                    } else {
                        s += w * ms_exp(e - mx);
                    }
                } else if (s == T(0)) {
                    mx = e;
                    s = T(1);
                } else if (e > mx) {
                    s = s * ms_exp(mx - e) + T(1);
                    mx = e;
                } else {
                    s += ms_exp(e - mx);
                }
            }
        }
    });
    if (valid) {
        if (KERNEL == MS_FLAT) out[row] = log((double)cnt);  // log(0) = -inf
        else out[row] = (double)mx + log((double)s);
    }
}

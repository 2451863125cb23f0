// neighbors.cu -- point/query reductions over a data set, no n x m matrix.
//
// All four kernels: 1-D grid, ceil(n_queries / blockDim.x) blocks of 128
// threads, one thread per query row (its coordinates in registers when D > 0).
// The reference rows (data or centers) stream through dynamic shared memory in
// tiles of `tile` rows (shared bytes = tile * d * sizeof(T)), loaded coalesced
// by the whole block; per-query results stay in registers until one store.
//
// nearest_center      argmin over centers (strict <: ties go to the lowest
//                     index) and the distance to it.
// count_within        number of rows with squared distance <= r2.
// kernel_sum          sum of exp(-u2/2) (Gaussian) or 1[u2 <= 1] (flat),
//                     u2 = squared distance * inv_h2.
// kth_neighbor        exact k-th smallest distance by a radix-4 search on the
//                     bit pattern of the squared distance (non-negative floats
//                     order like their bits): one counting pass over the data
//                     per two bits (16 for float, 32 for double), O(1) state
//                     per query, so k may be any fraction of n.
// count_within, kernel_sum and kth_neighbor take a WEIGHTED template flag
// (default false): rows carry their weight as a last column (common.cuh);
// counts become summed weights in double (count_within's output, the
// kth_neighbor counts, whose k is then a double amount of weight), kernel
// sums weigh each term.
//
// ms_segment_sum      sums of runs of doubles, sequentially in order from 0.0
//                     (one thread per run, no tiles): run s is values
//                     [starts[s], starts[s + 1]) (the last ends at n). Gives
//                     the bit-exact sums a sequential host loop gives: the cap
//                     of the weighted kth_neighbor's k (one run of all the
//                     weights, summed as its counts sum them) and bin seeding's
//                     weight per cell (np.bincount's order).
#include "common.cuh"

template <typename T>
struct ms_bits;
template <>
struct ms_bits<float> {
    typedef unsigned int U;
    static const int sign_bit = 31;
};
template <>
struct ms_bits<double> {
    typedef unsigned long long U;
    static const int sign_bit = 63;
};

__device__ __forceinline__ unsigned int ms_as_bits(float x) {
    union { float f; unsigned int u; } c;
    c.f = x;
    return c.u;
}
__device__ __forceinline__ unsigned long long ms_as_bits(double x) {
    union { double f; unsigned long long u; } c;
    c.f = x;
    return c.u;
}
__device__ __forceinline__ float ms_from_bits(unsigned int u) {
    union { float f; unsigned int u; } c;
    c.u = u;
    return c.f;
}
__device__ __forceinline__ double ms_from_bits(unsigned long long u) {
    union { double f; unsigned long long u; } c;
    c.u = u;
    return c.f;
}

template <typename T, int D>
__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
nearest_center(const T* __restrict__ X, int n, const T* __restrict__ C, int n_centers,
               int d, int tile, int* __restrict__ labels, T* __restrict__ dist) {
    MS_DYNAMIC_SHARED(T, sh);
    const int dd = D > 0 ? D : d;
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    const bool valid = row < n;
    T reg[D > 0 ? D : 1];
    const T* q = ms_query<T, D>(X, row, valid, dd, reg);
    T best = T(0);
    int best_j = -1;
    ms_for_tiles(sh, C, 0, n_centers, tile, dd, valid, [&](long long base, int rows) {
        for (int r = 0; r < rows; ++r) {
            const T u2 = ms_dist2<T, D>(q, sh + r * dd, dd);
            if (best_j < 0 || u2 < best) {
                best = u2;
                best_j = (int)base + r;
            }
        }
    });
    if (valid) {
        labels[row] = best_j;
        dist[row] = ms_sqrt(best);
    }
}

template <typename T, int D, bool W = false>
__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
count_within(const T* __restrict__ X, int n, const T* __restrict__ Q, int m, int d,
             int tile, T r2, typename ms_wcount<W>::type* __restrict__ out) {
    MS_DYNAMIC_SHARED(T, sh);
    const int dd = D > 0 ? D : d;
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    const bool valid = row < m;
    T reg[D > 0 ? D : 1];
    const T* q = ms_query<T, D>(Q, row, valid, dd, reg);
    typename ms_wcount<W>::type cnt = 0;
    const int stride = W ? dd + 1 : dd;
    ms_for_tiles(sh, X, 0, n, tile, stride, valid, [&](long long, int rows) {
        for (int r = 0; r < rows; ++r) {
            const T* x = sh + r * stride;
            if constexpr (W) cnt += ms_dist2<T, D>(q, x, dd) <= r2 ? (double)x[dd] : 0.0;
            else cnt += ms_dist2<T, D>(q, x, dd) <= r2 ? 1 : 0;
        }
    });
    if (valid) out[row] = cnt;
}

template <typename T, int D, int KERNEL, bool W = false>
__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
kernel_sum(const T* __restrict__ X, int n, const T* __restrict__ Q, int m, int d,
           int tile, T inv_h2, T* __restrict__ out) {
    MS_DYNAMIC_SHARED(T, sh);
    const int dd = D > 0 ? D : d;
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    const bool valid = row < m;
    T reg[D > 0 ? D : 1];
    const T* q = ms_query<T, D>(Q, row, valid, dd, reg);
    T acc = T(0);
    const int stride = W ? dd + 1 : dd;
    ms_for_tiles(sh, X, 0, n, tile, stride, valid, [&](long long, int rows) {
        for (int r = 0; r < rows; ++r) {
            const T* x = sh + r * stride;
            const T k = ms_weight<T, KERNEL>(ms_dist2<T, D>(q, x, dd) * inv_h2);
            if constexpr (W) acc += k * x[dd];
            else acc += k;
        }
    });
    if (valid) out[row] = acc;
}

template <typename T, int D, bool W = false>
__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
kth_neighbor(const T* __restrict__ X, int n, const T* __restrict__ Q, int m, int d,
             int tile, typename ms_count<double, W>::type k, T* __restrict__ out) {
    // Weighted: k is an amount of weight (double) and the counts below sum the
    // rows' weights in row order; for non-negative weights such a sum over
    // the rows with u <= v never decreases as v grows (rounding is
    // monotonic), so the search stays exact for the counts it computes. The
    // host caps k at the same sum over all rows.
    typedef typename ms_count<double, W>::type C;
    typedef typename ms_bits<T>::U U;
    MS_DYNAMIC_SHARED(T, sh);
    const int dd = D > 0 ? D : d;
    const int row = blockIdx.x * blockDim.x + threadIdx.x;
    const bool valid = row < m;
    T reg[D > 0 ? D : 1];
    const T* q = ms_query<T, D>(Q, row, valid, dd, reg);
    const int stride = W ? dd + 1 : dd;
    // Invariant: the answer's bits above `b` equal those of v. Two bits per
    // pass over the data (b and b - 1): the digit is the smallest j in 0..3
    // such that at least k squared distances are <= v with digit j and 1s
    // below; three counts per pass instead of one, half the passes (each
    // recomputes every distance, the larger cost). An odd last bit gets a
    // pass of its own.
    U v = 0;
    int b = ms_bits<T>::sign_bit - 1;
    for (; b >= 1; b -= 2) {
        const U low = (U(1) << (b - 1)) - U(1);
        const U b0 = v | low;
        const U b1 = b0 | (U(1) << (b - 1));
        const U b2 = b0 | (U(2) << (b - 1));
        C c0 = 0, c1 = 0, c2 = 0;
        ms_for_tiles(sh, X, 0, n, tile, stride, valid, [&](long long, int rows) {
            for (int r = 0; r < rows; ++r) {
                const T* x = sh + r * stride;
                const U u = ms_as_bits(ms_dist2<T, D>(q, x, dd));
                if constexpr (W) {
                    const double w = x[dd];
                    c0 += u <= b0 ? w : 0.0;
                    c1 += u <= b1 ? w : 0.0;
                    c2 += u <= b2 ? w : 0.0;
                } else {
                    c0 += u <= b0 ? 1 : 0;
                    c1 += u <= b1 ? 1 : 0;
                    c2 += u <= b2 ? 1 : 0;
                }
            }
        });
        const U digit = c0 >= k ? U(0) : c1 >= k ? U(1) : c2 >= k ? U(2) : U(3);
        v |= digit << (b - 1);
    }
    if (b == 0) {
        C cnt = 0;
        ms_for_tiles(sh, X, 0, n, tile, stride, valid, [&](long long, int rows) {
            for (int r = 0; r < rows; ++r) {
                const T* x = sh + r * stride;
                const bool in = ms_as_bits(ms_dist2<T, D>(q, x, dd)) <= v;
                if constexpr (W) cnt += in ? (double)x[dd] : 0.0;
                else cnt += in ? 1 : 0;
            }
        });
        if (cnt < k) v |= U(1);
    }
    if (valid) out[row] = ms_sqrt(ms_from_bits(v));
}

__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
ms_segment_sum(const double* __restrict__ values, int n, const int* __restrict__ starts,
               int n_segments, double* __restrict__ out) {
    const int s = blockIdx.x * blockDim.x + threadIdx.x;
    if (s >= n_segments) return;
    const int end = s + 1 < n_segments ? starts[s + 1] : n;
    double acc = 0.0;
    for (int i = starts[s]; i < end; ++i) acc += values[i];
    out[s] = acc;
}

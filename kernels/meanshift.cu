// meanshift.cu -- the fused mean-shift iteration.
//
// Inputs are centered and pre-scaled by 1/bandwidth on the host, so the
// neighbourhood test is u2 <= r2 with r2 = 1 and the Gaussian weight is
// exp(-u2/2). For integer-valued data under the flat kernel the host leaves
// the data in their own units and passes r2 = h^2 (see ms_weight_r).
//
// ms_shift_fused<T, D, KERNEL>   (the main kernel; many seeds)
//   grid  = ceil(n_active / blockDim.x) blocks, 1-D; block = 128 threads.
//   One thread per active seed; the seed position and the weighted sums stay
//   in registers (D > 0; and D < 0, the bounded path: any d <= -D, looping
//   over the dimensions in unrolled chunks of MS_CHUNK; the generic D = 0,
//   for d above every bound, keeps them in global memory). The data set streams through dynamic shared memory
//   in tiles of `tile` rows (shared bytes = tile * d * sizeof(T)). Each launch
//   runs up to `steps` shift iterations; a seed that stops (converged, max_iter,
//   orphan) idles but keeps loading tiles; the block leaves as soon as all its
//   seeds stopped (__syncthreads_or). Nothing of size n x m touches memory.
//
// ms_shift_partial<T, D, KERNEL> + ms_shift_finalize<T>   (few seeds)
//   grid = (ceil(n_active / blockDim.x), n_splits): block (x, y) handles the
//   seeds of x against rows [y*chunk, (y+1)*chunk) and writes per-split
//   partial sums (d values + weight sum, and a count); finalize (one thread per
//   seed, 1-D grid) adds the splits in a fixed order and applies the update.
//   One iteration per launch pair, but launches queue on the stream without a
//   host round trip.
//
// WEIGHTED (template flag, default false): rows carry their weight as a
//   last column (d + 1 values per row in the tiles; see common.cuh); each
//   pair adds w K to the weight total and w K x to the sums, the count
//   becomes the summed weight within r2 (type ms_count<T, true> = T).
//   Unweighted instantiations are the code without the flag.
//
// ms_compact_count + ms_compact_scan + ms_compact   (after each round)
//   Ordered stream compaction of the active list (block = 128 threads, each
//   kernel blockDim.x ints of dynamic shared memory): the still-active seeds
//   of active[0 .. n_active) go to active_out in the order they had, so the
//   grid kernel's seeds stay in cell order round after round (an atomic
//   counter would scramble them and the warps would diverge). Spans of
//   MS_COMPACT_SPAN slots (MS_COMPACT_ITEMS consecutive slots per thread):
//   count: grid = ceil(n_active / span) blocks; block b writes the number of
//     active seeds of span b to span_count[b].
//   scan: one block; span_count becomes its exclusive prefix sums (each
//     span's first output slot), and *count the total: the only value the
//     host reads between rounds.
//   ms_compact: same grid as count; block b writes its active seeds from
//     active_out[span_count[b]] on, in slot order (a block scan of the
//     threads' counts).
#include "common.cuh"

// ms_update (the shared update rule) lives in common.cuh: the grid kernel
// (grid.cu) applies the same rule.

// One seed against the `rows` points of a shared-memory tile: squared
// distance by differences, the kernel weight, the weighted sums, the weight
// total and the count within r2. The seed and its sums are in registers
// (preg, areg) for D != 0 (a fixed D > 0, or the bounded D < 0), else in
// memory (p, acc; dd columns).
// Both the fused and the split kernels weigh their tiles with it. Weighted
// (W): rows of dd + 1 values, the last the row's weight.
template <typename T, int D, int KERNEL, bool W>
__device__ __forceinline__ void ms_weigh_tile(const T* sh, int rows, int dd, const T* preg,
                                              const T* p, T* areg, T* acc, T r2, T& wsum,
                                              typename ms_count<T, W>::type& cnt) {
    for (int r = 0; r < rows; ++r) {
        const T* x = sh + r * (W ? dd + 1 : dd);
        const T u2 = ms_dist2<T, D>(D != 0 ? preg : p, x, dd);
        T w = ms_weight_r<T, KERNEL>(u2, r2);
        if constexpr (W) {
            const T rw = x[dd];  // the row's weight
            cnt += u2 <= r2 ? rw : T(0);
            w *= rw;
        } else {
            cnt += u2 <= r2 ? 1 : 0;
        }
        wsum += w;
        if constexpr (D > 0) {
#pragma unroll
            for (int k = 0; k < D; ++k) areg[k] += w * x[k];
        } else if constexpr (D < 0) {
            ms_for_dims<D>(dd, [&](int k) { areg[k] += w * x[k]; });
        } else if (w != T(0)) {
            for (int k = 0; k < dd; ++k) acc[k] += w * x[k];
        }
    }
}

template <typename T, int D, int KERNEL, bool W = false>
__global__ void __launch_bounds__(MS_MAX_BLOCK, MS_MIN_BLOCKS_W(T, D, W))
ms_shift_fused(const T* __restrict__ X, int n, int d, int tile,
               T* __restrict__ pos, T* __restrict__ scratch,
               int* __restrict__ n_iter, typename ms_count<T, W>::type* __restrict__ intensity,
               int* __restrict__ state, const int* __restrict__ active,
               int n_active, int max_iter, int steps, T tol2, T r2) {
    MS_DYNAMIC_SHARED(T, sh);
    const int dd = D > 0 ? D : d;
    const int slot = blockIdx.x * blockDim.x + threadIdx.x;
    int seed = -1;
    bool live = false;
    if (slot < n_active) {
        seed = active[slot];
        live = state[seed] == MS_ACTIVE;
    }
    const bool started = live;
    T preg[MS_REGS(D)];
    T areg[MS_REGS(D)];
    T* p = preg;
    T* acc = areg;
    int it = 0;
    if (live) {
        it = n_iter[seed];
        if constexpr (D != 0) {
            ms_for_dims<D>(dd, [&](int k) { preg[k] = pos[(long long)seed * dd + k]; });
        } else {
            p = pos + (long long)seed * dd;
            acc = scratch + (long long)seed * dd;
        }
    }
    for (int s = 0; s < steps; ++s) {
        if (!__syncthreads_or(live)) break;
        T wsum = T(0);
        typename ms_count<T, W>::type cnt = 0;
        if (live) {
            if constexpr (D < 0) ms_for_dims<D>(dd, [&](int k) { areg[k] = T(0); });
            else for (int k = 0; k < dd; ++k) acc[k] = T(0);
        }
        ms_for_tiles(sh, X, 0, n, tile, W ? dd + 1 : dd, live, [&](long long, int rows) {
            ms_weigh_tile<T, D, KERNEL, W>(sh, rows, dd, preg, p, areg, acc, r2, wsum, cnt);
        });
        if (live)
            live = ms_update<(D < 0 ? D : 0)>(p, acc, wsum, cnt, dd, tol2, max_iter, it,
                                              state + seed, intensity + seed);
    }
    if (started) {
        if constexpr (D != 0)
            ms_for_dims<D>(dd, [&](int k) { pos[(long long)seed * dd + k] = preg[k]; });
        n_iter[seed] = it;
    }
}

template <typename T, int D, int KERNEL, bool W = false>
__global__ void __launch_bounds__(MS_MAX_BLOCK, MS_MIN_BLOCKS_W(T, D, W))
ms_shift_partial(const T* __restrict__ X, int n, int d, int tile, int chunk,
                 const T* __restrict__ pos, const int* __restrict__ state,
                 const int* __restrict__ active, int n_active,
                 T* __restrict__ partial, typename ms_count<T, W>::type* __restrict__ pcount,
                 T r2) {
    MS_DYNAMIC_SHARED(T, sh);
    const int dd = D > 0 ? D : d;
    const int slot = blockIdx.x * blockDim.x + threadIdx.x;
    bool live = false;
    int seed = -1;
    if (slot < n_active) {
        seed = active[slot];
        live = state[seed] == MS_ACTIVE;
    }
    // partial row of this (split, slot): dd weighted sums then the weight sum
    T* out = partial + ((long long)blockIdx.y * n_active + (slot < n_active ? slot : 0)) * (dd + 1);
    T preg[MS_REGS(D)];
    T areg[MS_REGS(D)];
    const T* p = pos + (long long)(seed < 0 ? 0 : seed) * dd;
    T* acc = D != 0 ? areg : out;
    if (live) {
        if constexpr (D > 0) {
#pragma unroll
            for (int k = 0; k < D; ++k) preg[k] = p[k];
            for (int k = 0; k < dd; ++k) acc[k] = T(0);
        } else if constexpr (D < 0) {
            ms_for_dims<D>(dd, [&](int k) {
                preg[k] = p[k];
                areg[k] = T(0);
            });
        } else {
            for (int k = 0; k < dd; ++k) acc[k] = T(0);
        }
    }
    if (!__syncthreads_or(live)) return;  // uniform: the whole block leaves
    const int begin = blockIdx.y * chunk;  // < n: the host makes ceil(n / chunk) ranges
    const int end = chunk < n - begin ? begin + chunk : n;  // begin + chunk may pass 2^31
    T wsum = T(0);
    typename ms_count<T, W>::type cnt = 0;
    ms_for_tiles(sh, X, begin, end, tile, W ? dd + 1 : dd, live, [&](long long, int rows) {
        ms_weigh_tile<T, D, KERNEL, W>(sh, rows, dd, preg, p, areg, acc, r2, wsum, cnt);
    });
    if (live) {
        if constexpr (D != 0) ms_for_dims<D>(dd, [&](int k) { out[k] = areg[k]; });
        out[dd] = wsum;
        pcount[(long long)blockIdx.y * n_active + slot] = cnt;
    }
}

template <typename T, bool W = false>
__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
ms_shift_finalize(const T* __restrict__ partial,
                  const typename ms_count<T, W>::type* __restrict__ pcount,
                  int n_splits, int d, T* __restrict__ pos, T* __restrict__ scratch,
                  int* __restrict__ n_iter, typename ms_count<T, W>::type* __restrict__ intensity,
                  int* __restrict__ state, const int* __restrict__ active,
                  int n_active, int max_iter, T tol2) {
    const int slot = blockIdx.x * blockDim.x + threadIdx.x;
    if (slot >= n_active) return;  // no barrier in this kernel
    const int seed = active[slot];
    if (state[seed] != MS_ACTIVE) return;
    T* acc = scratch + (long long)seed * d;
    T wsum = T(0);
    typename ms_count<T, W>::type cnt = 0;
    for (int k = 0; k < d; ++k) acc[k] = T(0);
    for (int s = 0; s < n_splits; ++s) {  // fixed order: deterministic sums
        const T* row = partial + ((long long)s * n_active + slot) * (d + 1);
        for (int k = 0; k < d; ++k) acc[k] += row[k];
        wsum += row[d];
        cnt += pcount[(long long)s * n_active + slot];
    }
    int it = n_iter[seed];
    ms_update(pos + (long long)seed * d, acc, wsum, cnt, d, tol2, max_iter, it,
                 state + seed, intensity + seed);
    n_iter[seed] = it;
}

// Slots per thread and per block of the compaction kernels.
#define MS_COMPACT_ITEMS 8
#define MS_COMPACT_SPAN (MS_MAX_BLOCK * MS_COMPACT_ITEMS)

// Exclusive prefix sum of one value per thread of the block (Hillis-Steele
// over sh_scan, blockDim.x ints of shared memory); *total gets the block's
// sum. Every thread calls it.
__device__ __forceinline__ int ms_block_scan(int* sh_scan, int v, int* total) {
    const int t = threadIdx.x;
    sh_scan[t] = v;
    __syncthreads();
    for (int off = 1; off < (int)blockDim.x; off <<= 1) {
        const int u = t >= off ? sh_scan[t - off] : 0;
        __syncthreads();
        sh_scan[t] += u;
        __syncthreads();
    }
    *total = sh_scan[blockDim.x - 1];
    const int excl = sh_scan[t] - v;
    __syncthreads();  // sh_scan is free for the next call
    return excl;
}

// Active seeds among this thread's slots [first, first + MS_COMPACT_ITEMS).
__device__ __forceinline__ int ms_compact_items(const int* __restrict__ state,
                                                const int* __restrict__ active, int n_active,
                                                long long first) {
    int c = 0;
    for (int i = 0; i < MS_COMPACT_ITEMS; ++i) {
        const long long slot = first + i;
        if (slot < n_active && state[active[slot]] == MS_ACTIVE) ++c;
    }
    return c;
}

__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
ms_compact_count(const int* __restrict__ state, const int* __restrict__ active, int n_active,
                 int* __restrict__ span_count) {
    const long long span = (long long)blockDim.x * MS_COMPACT_ITEMS;
    const long long first = blockIdx.x * span + (long long)threadIdx.x * MS_COMPACT_ITEMS;
    MS_DYNAMIC_SHARED(int, sh);
    int total;
    ms_block_scan(sh, ms_compact_items(state, active, n_active, first), &total);
    if (threadIdx.x == 0) span_count[blockIdx.x] = total;
}

__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
ms_compact_scan(int* __restrict__ span_count, int n_spans, int* __restrict__ count) {
    MS_DYNAMIC_SHARED(int, sh);
    int carry = 0;  // the same in every thread
    const int per_pass = blockDim.x * MS_COMPACT_ITEMS;
    for (int base = 0; base < n_spans; base += per_pass) {
        const int first = base + threadIdx.x * MS_COMPACT_ITEMS;
        int v[MS_COMPACT_ITEMS];
        int mine = 0;
#pragma unroll
        for (int i = 0; i < MS_COMPACT_ITEMS; ++i) {
            v[i] = first + i < n_spans ? span_count[first + i] : 0;
            mine += v[i];
        }
        int total;
        int run = carry + ms_block_scan(sh, mine, &total);
#pragma unroll
        for (int i = 0; i < MS_COMPACT_ITEMS; ++i) {
            if (first + i < n_spans) span_count[first + i] = run;
            run += v[i];
        }
        carry += total;
    }
    if (threadIdx.x == 0) *count = carry;
}

__global__ void __launch_bounds__(MS_MAX_BLOCK, 1)
ms_compact(const int* __restrict__ state, const int* __restrict__ active, int n_active,
           const int* __restrict__ span_start, int* __restrict__ active_out) {
    const long long span = (long long)blockDim.x * MS_COMPACT_ITEMS;
    const long long first = blockIdx.x * span + (long long)threadIdx.x * MS_COMPACT_ITEMS;
    MS_DYNAMIC_SHARED(int, sh);
    int total;
    int out = span_start[blockIdx.x]
              + ms_block_scan(sh, ms_compact_items(state, active, n_active, first), &total);
    for (int i = 0; i < MS_COMPACT_ITEMS; ++i) {
        const long long slot = first + i;
        if (slot < n_active) {
            const int seed = active[slot];
            if (state[seed] == MS_ACTIVE) active_out[out++] = seed;
        }
    }
}

// common.cuh -- helpers shared by every gpumeanshift kernel.
//
// Tiling scheme used by all kernels: one thread per query (seed, point or
// center); the data set is streamed through *dynamic* shared memory in tiles of
// `tile` rows (row-major, tile * d values), loaded cooperatively and coalesced by
// the whole block. Every thread of a block reads the same shared row at the
// same time, so shared reads are broadcasts (no bank conflicts). Kernels use
// only dynamic shared memory (sized by the host, <= 48 KiB, no opt-in needed).
//
// Dimension: template parameter D > 0 fixes d at compile time (the query row
// lives in registers, loops unroll); D == 0 is the generic path where d is a
// run-time argument and per-query vectors live in global scratch memory.
// D < 0 (the shift kernels only) is the bounded path: d is a run-time
// argument <= -D, per-seed vectors live in registers of extent -D, and loops
// run over the dimensions in chunks of MS_CHUNK (see ms_for_dims).
//
// Every thread of a block reaches every __syncthreads (threads with no work
// still help to load tiles): required by CUDA and by the OpenMP emulator.
//
// This file must stay in the C++ subset accepted by both NVRTC and g++
// (no standard headers; the emulator's cuda_emu.h supplies the CUDA names).
#pragma once

#ifndef MS_EMULATED
#define MS_DYNAMIC_SHARED(T, name)                                   \
    extern __shared__ __align__(16) unsigned char ms_dyn_smem_[];   \
    T* name = reinterpret_cast<T*>(ms_dyn_smem_)
#endif

// Threads per block every kernel is compiled for (runtime.BLOCK on the host).
#define MS_MAX_BLOCK 128
// Resident blocks per SM asked of ptxas for the shift kernels: 8 blocks of 128
// threads = 50% occupancy on sm_80/sm_90 (<= 64 registers). Float D = 16 and
// every double instantiation spill under a 64-register cap on some arch, so
// they ask for 4 (<= 128 registers). The other kernels say (MS_MAX_BLOCK, 1):
// without an explicit minimum, ptxas 12.9 trades spills for occupancy.
// Bounded dimensions (D < 0) count by their extent -D: double -32 (128
// registers of state alone) asks for 2 (<= 255 registers).
#define MS_DIM_EXTENT(D) ((D) < 0 ? -(D) : (D))
#define MS_MIN_BLOCKS(T, D)                                                   \
    (sizeof(T) == 4 ? (MS_DIM_EXTENT(D) <= 8 ? 8 : 4) : (MS_DIM_EXTENT(D) <= 16 ? 4 : 2))
// The weighted shift kernels (WEIGHTED, below): the same, except double
// D = 16, whose extra weight column spills under 128 registers on sm_90: 3
// blocks (<= 168 registers; 25% occupancy, as its unweighted kernel's 4).
#define MS_MIN_BLOCKS_W(T, D, W)                                              \
    ((W) && sizeof(T) == 8 && MS_DIM_EXTENT(D) == 16 ? 3 : MS_MIN_BLOCKS(T, D))
// Register extent of a per-seed vector: D, -D (bounded), 1 (generic: unused).
#define MS_REGS(D) ((D) != 0 ? MS_DIM_EXTENT(D) : 1)
// Chunk width of the bounded path's loops over dimensions.
#define MS_CHUNK 4

#define MS_GAUSSIAN 0
#define MS_FLAT 1
// Gaussian truncated at MS_GRID_RADIUS bandwidths (weights of points with
// u2 > MS_GRID_RADIUS^2 dropped): the semantics of algorithm="grid"
// (gpumeanshift._spatial.GAUSSIAN_GRID_RADIUS; a test checks they agree).
#define MS_GAUSSIAN_GRID 2
#define MS_GRID_RADIUS2 36

// Seed state codes (shared with cuda_backend.py).
#define MS_ACTIVE 0
#define MS_CONVERGED 1
#define MS_MAXITER 2
#define MS_ORPHAN 3
// The proven Gaussian grid (grid.cu) could not prove a step: the host takes
// the seed on with the exact all-points kernel.
#define MS_UNPROVEN 4

__device__ __forceinline__ float ms_exp(float x) { return expf(x); }
__device__ __forceinline__ double ms_exp(double x) { return exp(x); }
__device__ __forceinline__ float ms_sqrt(float x) { return sqrtf(x); }
__device__ __forceinline__ double ms_sqrt(double x) { return sqrt(x); }

// Gaussian weight exp(-u2 / 2). float: as 2^(-u2 * log2(e) / 2), one multiply
// and one MUFU.EX2 (exp2f, <= 2 ulp) instead of expf's ~10-instruction range
// reduction: the pair loop is issue-bound, this nearly halves it for d <= 3.
// double: the accurate exp (FP64 throughput bounds that path anyway).
__device__ __forceinline__ float ms_gauss(float u2) {
    return exp2f(u2 * -0.72134752044448170368f);
}
__device__ __forceinline__ double ms_gauss(double u2) { return ms_exp(-0.5 * u2); }

// Kernel weight for a squared distance already divided by h^2.
template <typename T, int KERNEL>
__device__ __forceinline__ T ms_weight(T u2) {
    if (KERNEL == MS_FLAT) return u2 <= T(1) ? T(1) : T(0);
    if (KERNEL == MS_GAUSSIAN_GRID) return u2 <= T(MS_GRID_RADIUS2) ? ms_gauss(u2) : T(0);
    return ms_gauss(u2);
}

// The same, with the flat kernel's squared radius as a parameter: r2 = 1 for
// data scaled by 1/h; h^2 for data left in their own units (the host does
// that for integer-valued data under the flat kernel only, so that exact
// boundary ties are decided as sum (x - q)^2 <= h^2). Other kernels ignore it.
template <typename T, int KERNEL>
__device__ __forceinline__ T ms_weight_r(T u2, T r2) {
    if (KERNEL == MS_FLAT) return u2 <= r2 ? T(1) : T(0);
    return ms_weight<T, KERNEL>(u2);
}

// Cooperative, coalesced load of rows [base, base + rows) of X (row-major,
// d columns) into shared memory.
template <typename T>
__device__ __forceinline__ void ms_load_tile(T* sh, const T* __restrict__ X,
                                             long long base, int rows, int d) {
    const int total = rows * d;
    const T* src = X + base * d;
    for (int i = threadIdx.x; i < total; i += blockDim.x) sh[i] = src[i];
}

// Number of tiles covering `count` rows.
__device__ __forceinline__ int ms_num_tiles(int count, int tile) {
    return (count + tile - 1) / tile;
}

__device__ __forceinline__ int ms_min(int a, int b) { return a < b ? a : b; }

// Rows [begin, end) of X stream through shared memory `sh` in tiles of up to
// `tile` rows: the whole block loads each tile and waits on it, then the
// threads with `take` call fn(base, rows) on it (rows base .. base + rows - 1
// of X are sh[0 .. rows * d)), and the block waits again before the next
// load. Every thread of the block must call it (it holds barriers).
template <typename T, typename F>
__device__ __forceinline__ void ms_for_tiles(T* sh, const T* __restrict__ X, int begin, int end,
                                             int tile, int d, bool take, F fn) {
    const int ntiles = ms_num_tiles(end > begin ? end - begin : 0, tile);
    for (int t = 0; t < ntiles; ++t) {
        const long long base = (long long)begin + (long long)t * tile;
        const int rows = ms_min(tile, end - (int)base);
        ms_load_tile(sh, X, base, rows, d);
        __syncthreads();  // tile loaded
        if (take) fn(base, rows);
        __syncthreads();  // tile consumed
    }
}

// f(k) for k = 0 .. dd - 1 in order. For D != 0, k is a compile-time
// constant in the unrolled code (so f may index register arrays with it).
// D > 0: dd == D, one unrolled loop. D < 0 (bounded, dd <= -D): chunks of
// MS_CHUNK dimensions, unrolled; the block leaves the loop at the first chunk
// past dd (uniform: every thread has the same dd), and only the last, partial
// chunk tests its dimensions one by one. D == 0: a plain loop to dd.
template <int D, typename F>
__device__ __forceinline__ void ms_for_dims(int dd, F f) {
    if constexpr (D > 0) {
#pragma unroll
        for (int k = 0; k < D; ++k) f(k);
    } else if constexpr (D == 0) {
        for (int k = 0; k < dd; ++k) f(k);
    } else {
        static_assert((-D) % MS_CHUNK == 0, "bounded extent: a multiple of MS_CHUNK");
#pragma unroll
        for (int c = 0; c < -D; c += MS_CHUNK) {
            if (c >= dd) break;
            if (c + MS_CHUNK <= dd) {
#pragma unroll
                for (int j = 0; j < MS_CHUNK; ++j) f(c + j);
            } else {
#pragma unroll
                for (int j = 0; j < MS_CHUNK; ++j)
                    if (c + j < dd) f(c + j);
            }
        }
    }
}

// Squared distance between a query (registers when D != 0, memory otherwise)
// and a shared-memory row, summed over the features in order.
template <typename T, int D>
__device__ __forceinline__ T ms_dist2(const T* q, const T* x, int dd) {
    T u2 = T(0);
    ms_for_dims<D>(dd, [&](int k) {
        const T diff = x[k] - q[k];
        u2 += diff * diff;
    });
    return u2;
}

// Loads the query row: into registers (D > 0) or points at global memory.
template <typename T, int D>
__device__ __forceinline__ const T* ms_query(const T* __restrict__ Q, int row, bool valid,
                                             int dd, T* reg) {
    const T* q = Q + (long long)(valid ? row : 0) * dd;
    if (D > 0) {
#pragma unroll
        for (int k = 0; k < (D > 0 ? D : 1); ++k) reg[k] = valid ? q[k] : T(0);
        return reg;
    }
    return q;
}

// Sample weights (the WEIGHTED template flag of the shift, density and
// neighbour kernels): the host appends each row's weight to it as one more
// column in the data's dtype, so a weighted kernel streams rows of d + 1
// values through the same tiles (no second array, no extra pass) and reads
// the weight as x[d]. The host drops rows of weight 0 and divides the
// weights by a power of two so that the largest is in (1/2, 1] (exact; the
// results are scaled back). WEIGHTED = false compiles to the unweighted
// kernel unchanged (the flag only selects code under `if constexpr`).
//
// Count type of the shift kernels: points within reach (int), or their
// summed weight (the data's dtype) when weighted.
template <typename T, bool W>
struct ms_count {
    typedef int type;
};
template <typename T>
struct ms_count<T, true> {
    typedef T type;
};
// Count type of count_within / kth_neighbor: int64 / int, or double (summed
// weights) when weighted.
template <bool W>
struct ms_wcount {
    typedef long long type;
};
template <>
struct ms_wcount<true> {
    typedef double type;
};

// Weight sums below ms_tiny_sum are scaled by ms_big_scale in ms_update
// (powers of two: exact; the scaled sum is normal, its reciprocal finite).
__device__ __forceinline__ float ms_tiny_sum(float) { return 0x1p-64f; }
__device__ __forceinline__ double ms_tiny_sum(double) { return 0x1p-512; }
__device__ __forceinline__ float ms_big_scale(float) { return 0x1p64f; }
__device__ __forceinline__ double ms_big_scale(double) { return 0x1p512; }

// Shared update rule (scikit-learn's loop body). Returns true while the seed
// stays active. p and acc may live in registers (D > 0) or global memory.
// C is the count type (ms_count): int, or T for a weighted shift, whose
// acc and wsum are then sums of w K x and w K; the quotient and the scaling
// below are the same.
// D: 0 (or any D > 0, whose dd is a constant) loops over dd at run time; D < 0
// (bounded) goes through ms_for_dims, so p and acc may be register arrays.
template <int D = 0, typename T, typename C>
__device__ __forceinline__ bool ms_update(T* p, const T* acc, T wsum, C cnt, int dd,
                                          T tol2, int max_iter, int& it,
                                          int* __restrict__ state_out,
                                          C* __restrict__ intensity_out) {
    if (!(wsum > T(0))) {  // flat: no neighbour (or only rows of weight 0 weighted);
                           // gaussian: every weight underflowed
        *intensity_out = C(0);
        *state_out = MS_ORPHAN;
        return false;
    }
    // The correctly rounded quotient acc[k] / wsum without a division per
    // coordinate (whose slow path is a call: it made the double d=16 fused
    // kernel spill): q0 = acc * (1 / wsum) is within 1 ulp, the remainder
    // acc - q0 * wsum is exact in one fma, and q0 + remainder / wsum rounded
    // once is the correctly rounded quotient (Markstein's theorem; checked
    // against a / b on 5.4e7 random pairs). For integer data the sums are
    // exact, so the mean is bit for bit the host's np.mean, which exact
    // boundary ties need.
    // A seed tens of bandwidths from every point has subnormal weights and
    // 1 / wsum overflows (double: wsum < 2^-1024). Scaling acc and wsum by
    // the same power of two is exact and leaves the quotient unchanged, so
    // tiny sums are brought up first (the host's acc / wsum does the same).
    const T scale = wsum < ms_tiny_sum(wsum) ? ms_big_scale(wsum) : T(1);
    wsum *= scale;
    const T inv = T(1) / wsum;
    T moved2 = T(0);
    ms_for_dims<(D < 0 ? D : 0)>(dd, [&](int k) {
        const T a = acc[k] * scale;
        const T q0 = a * inv;
        const T nk = fma(fma(-q0, wsum, a), inv, q0);
        const T diff = nk - p[k];
        moved2 += diff * diff;
        p[k] = nk;
    });
    *intensity_out = cnt;
    if (moved2 <= tol2) {
        *state_out = MS_CONVERGED;
        return false;
    }
    if (it >= max_iter) {
        *state_out = MS_MAXITER;
        return false;
    }
    ++it;
    return true;
}

// Multiply / add rounded once each, never fused into an FMA: the image filter
// repeats the NumPy path's float operations exactly (NVRTC contracts a * b + c
// into an FMA by default; so does the emulator's build, whose header keeps
// these intrinsics unfused).
__device__ __forceinline__ float ms_mul_rn(float a, float b) { return __fmul_rn(a, b); }
__device__ __forceinline__ double ms_mul_rn(double a, double b) { return __dmul_rn(a, b); }
__device__ __forceinline__ float ms_add_rn(float a, float b) { return __fadd_rn(a, b); }
__device__ __forceinline__ double ms_add_rn(double a, double b) { return __dadd_rn(a, b); }

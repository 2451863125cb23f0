// grid.cu -- mean shift over a cell list (algorithm="grid"), d = 1, 2, 3.
//
// Data: centered and pre-scaled by 1/bandwidth on the host, then sorted by
// cell id; integer-valued data under the flat kernel stay in their own units
// instead, with r2 = h^2 (as in meanshift.cu; r2 = 1 otherwise). Cells are
// cubes of side `cell` (= the kernel's reach: 1 bandwidth for flat,
// MS_GRID_RADIUS for the truncated Gaussian, in the data's units); the cell of a point y
// is floor((y - origin) / cell) per axis, ids row-major (last axis fastest).
// Only non-empty cells are listed: cell_ids (sorted, int64) and cell_start
// (n_cells + 1 offsets into the sorted data, cell_start[n_cells] = n).
//
// ms_shift_grid<T, D, KERNEL>
//   grid = ceil(n_active / blockDim.x) blocks, 1-D; block = 128 threads; no
//   shared memory. One thread per active seed, position and sums in
//   registers. Per step the seed visits the cells its reach box
//   [p - reach, p + reach] overlaps: at most 3 per axis (a subset of the 3^d
//   cells around its own), computed in double with a 1e-6-cell slack so that
//   rounding never drops a cell (a 4th cell may then be visited). Along the
//   last axis consecutive cells have consecutive ids, and the non-empty ones
//   among them hold one contiguous run of sorted points: 3^(d-1) runs, each
//   found by two binary searches in cell_ids. Points are read from global
//   memory (read-only path); seeds arrive in cell order, so the threads of a
//   warp read mostly the same runs, served by L1/L2. Seeds work independently
//   (no barrier): a stopped thread simply leaves.
//   Each launch runs up to `steps` shift steps with the rule of ms_update,
//   then ms_compact (meanshift.cu) rebuilds the active list, as for the
//   fused kernel.
//   KERNEL == MS_GAUSSIAN (the proven grid of algorithm="auto", cells of side
//   `reach` = gaussian_proof_radius): before each update the seed proves
//   that the n_out points it did not visit, all more than `reach` away, move
//   its step by less than rounding: n_out * (reach + |step|) / wsum * proof
//   <= 1, with proof = 2 exp(-reach^2 / 2) / (eps / 2) from the host
//   (_spatial.gaussian_truncation_bound). A seed that cannot leaves with
//   state MS_UNPROVEN, its position and count untouched, and the host climbs
//   it on with the exact all-points kernel.
//   With weights the bound takes the weight outside reach: at most n_out
//   times the largest weight, which the host makes <= 1 (see common.cuh),
//   so n_out itself bounds it and the test is unchanged (sound, if a little
//   conservative where the weights vary; a seed that cannot prove a step
//   goes to the exact kernel as before).
//   WEIGHTED (template flag, default false): rows of D + 1 values, the last
//   the row's weight, as in meanshift.cu.
#include "common.cuh"

// First index i in [lo, hi) with ids[i] >= key (hi when none).
__device__ __forceinline__ int ms_lower_bound(const long long* __restrict__ ids, int lo, int hi,
                                              long long key) {
    while (lo < hi) {
        const int mid = lo + ((hi - lo) >> 1);
        if (ids[mid] < key) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

template <typename T, int D, int KERNEL, bool W = false>
__global__ void __launch_bounds__(MS_MAX_BLOCK, MS_MIN_BLOCKS(T, D))
ms_shift_grid(const T* __restrict__ X, int n, const long long* __restrict__ cell_ids,
              const int* __restrict__ cell_start, int n_cells,
              const double* __restrict__ origin, const int* __restrict__ gshape,
              const long long* __restrict__ gstride, double cell, double reach,
              T* __restrict__ pos, int* __restrict__ n_iter,
              typename ms_count<T, W>::type* __restrict__ intensity,
              int* __restrict__ state, const int* __restrict__ active, int n_active,
              int max_iter, int steps, T tol2, T r2, double proof) {
    const int slot = blockIdx.x * blockDim.x + threadIdx.x;
    if (slot >= n_active) return;
    const int seed = active[slot];
    if (state[seed] != MS_ACTIVE) return;
    T p[D];
    T acc[D];
#pragma unroll
    for (int k = 0; k < D; ++k) p[k] = pos[(long long)seed * D + k];
    const double inv_cell = 1.0 / cell;
    int it = n_iter[seed];
    bool live = true;
    for (int s = 0; s < steps && live; ++s) {
        // Cell range per axis overlapped by the reach box, clipped to the grid.
        int clo[D], chi[D];
        bool empty = false;
#pragma unroll
        for (int k = 0; k < D; ++k) {
            const double rel = (double)p[k] - origin[k];
            const double lo = floor((rel - reach) * inv_cell - 1e-6);
            const double hi = floor((rel + reach) * inv_cell + 1e-6);
            const double top = (double)(gshape[k] - 1);
            clo[k] = lo < 0.0 ? 0 : (lo > top ? gshape[k] : (int)lo);
            chi[k] = hi > top ? gshape[k] - 1 : (hi < 0.0 ? -1 : (int)hi);
            empty = empty || clo[k] > chi[k];
        }
        T wsum = T(0);
        typename ms_count<T, W>::type cnt = 0;
        int nvis = 0;  // points visited (the proven Gaussian's n - n_out)
#pragma unroll
        for (int k = 0; k < D; ++k) acc[k] = T(0);
        if (!empty) {
            int cur[D > 1 ? D - 1 : 1];
#pragma unroll
            for (int k = 0; k < (D > 1 ? D - 1 : 1); ++k) cur[k] = k < D - 1 ? clo[k] : 0;
            int c = 0;  // cells are sorted: each run's search starts after the last
            while (true) {
                long long base = 0;
#pragma unroll
                for (int k = 0; k < D - 1; ++k) base += (long long)cur[k] * gstride[k];
                c = ms_lower_bound(cell_ids, c, n_cells, base + clo[D - 1]);
                const int c_end = ms_lower_bound(cell_ids, c, n_cells, base + chi[D - 1] + 1);
                const int j_end = cell_start[c_end];
                if (KERNEL == MS_GAUSSIAN) nvis += j_end - cell_start[c];
                for (int j = cell_start[c]; j < j_end; ++j) {
                    const T* x = X + (long long)j * (W ? D + 1 : D);
                    T xr[D];
                    T u2 = T(0);
#pragma unroll
                    for (int k = 0; k < D; ++k) {
                        xr[k] = x[k];
                        const T diff = xr[k] - p[k];
                        u2 += diff * diff;
                    }
                    T w = ms_weight_r<T, KERNEL>(u2, r2);
                    if constexpr (W) {
                        const T rw = x[D];  // the row's weight, <= 1
                        cnt += u2 <= r2 ? rw : T(0);
                        w *= rw;
                    } else {
                        cnt += u2 <= r2 ? 1 : 0;
                    }
                    wsum += w;
#pragma unroll
                    for (int k = 0; k < D; ++k) acc[k] += w * xr[k];
                }
                c = c_end;
                // Next run: odometer over the first D - 1 axes.
                int k = D - 2;
                for (; k >= 0; --k) {
                    if (++cur[k] <= chi[k]) break;
                    cur[k] = clo[k];
                }
                if (k < 0) break;  // runs come in increasing id order: c only grows
            }
        }
        if (KERNEL == MS_GAUSSIAN && nvis < n) {
            // |step| from the rounded quotient: the bound carries a factor 2.
            double step2 = 0.0;
#pragma unroll
            for (int k = 0; k < D; ++k) {
                const double dk = (double)acc[k] / (double)wsum - (double)p[k];
                step2 += dk * dk;
            }
            const double bound = (double)(n - nvis) * (reach + sqrt(step2)) * proof
                                 / (double)wsum;
            if (!(bound <= 1.0)) {  // wsum == 0 too (inf or NaN)
                state[seed] = MS_UNPROVEN;
                break;
            }
        }
        live = ms_update(p, acc, wsum, cnt, D, tol2, max_iter, it, state + seed,
                            intensity + seed);
    }
#pragma unroll
    for (int k = 0; k < D; ++k) pos[(long long)seed * D + k] = p[k];
    n_iter[seed] = it;
}

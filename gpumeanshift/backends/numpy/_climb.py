"""One :meth:`NumpyBackend.shift <gpumeanshift.backends.numpy.NumpyBackend.shift>`:
the climb of every seed, as a plan (the frame, the index, the mode) and its
steps.

The data are centred on their midrange and divided by the bandwidth once, so
distances are in bandwidths. Every round the seeds still moving are ordered
into compact tiles (``NumpyBackend._plan_tiles``); a tile's step visits the
index's candidates within reach of its bounding box and makes two products:
``-|q - x|^2 / 2`` for every pair, and the weighted sums and the weight total
at once. Three modes change what a step does:

* **lattice** (flat kernel, integer-valued data): the climb is kept in the
  data's own units, as scikit-learn runs it, and pairs within rounding of the
  boundary are decided exactly (``within_exact``);
* **proven** (Gaussian under "auto", d <= 3): a cell grid whose truncation
  each seed proves harmless on every step (``gaussian_truncation_bound``);
  a seed that cannot takes the full proof block, then brute force's step;
* **big** (data beyond ``SAFE_ABS`` bandwidths): squared distances by
  differences instead of the expansion.

Outside the global frame (float64 data within ``_GLOBAL_FRAME_MAX``
bandwidths of their centre) each tile re-centres its candidates on itself.
"""

from __future__ import annotations

import threading

import numpy as np

from ..._spatial import (GRID_MAX_DIM, SAFE_ABS, SortedIndex, coincident_rows, col_max,
                         col_min, gaussian_proof_radius, gaussian_truncation_bound,
                         integer_valued, make_index, midrange, neighbourhood_reach,
                         resolve_leaders, within_exact)
from ..base import ShiftResult
from ._blocks import (_MAX_TILE_SPAN, _absmax, _augment_points, _augment_points_t,
                      _augment_queries, _neg_half_sqdist, _product, _rows, _weight_units,
                      _weighted_data, _weighted_rows)


class Climb:
    """The plan of one ``shift`` call and the state of its seeds.

    ``Climb(backend, X, seeds, ...).run(max_iter, tol, progress)`` returns
    the :class:`~gpumeanshift.backends.base.ShiftResult`; ``n_exact`` and
    ``n_wider`` count the seed steps the proof sent to brute force and to
    the full proof block.
    """

    def __init__(self, be, X, seeds, *, bandwidth, kernel, algorithm, weights):
        self.be = be
        X, wts = _weighted_data(np.asarray(X), weights)
        self.X, self.wts, self.kernel, self.bandwidth = X, wts, kernel, bandwidth
        self.seeds = np.asarray(seeds, dtype=X.dtype)
        self.dtype = dtype = X.dtype
        n, d = X.shape
        self.n, self.d = n, d

        # Centre and pre-scale: distances are in bandwidths from here on.
        # Both in float64 (1/h need not fit the data's dtype), rounded once;
        # the driver has checked that the result fits the dtype.
        self.center = midrange(X)
        self.inv_h = 1.0 / bandwidth
        self.Y = Y = ((X - self.center) * self.inv_h).astype(dtype)
        S = ((self.seeds - self.center) * self.inv_h).astype(dtype)
        # Beyond SAFE_ABS bandwidths the expanded |q|^2 + |x|^2 - 2 q.x
        # overflows: such (extreme) data take the exact path by differences.
        self.big = big = max(_absmax(Y), _absmax(S)) > 0.25 * SAFE_ABS[np.dtype(dtype)]

        reach = neighbourhood_reach(kernel, dtype, algorithm)
        self.lattice = lattice = kernel == "flat" and not big and integer_valued(X)
        if lattice:
            # See below. A point at exactly one bandwidth can land a rounding
            # error beyond 1 in scaled units: visit a hair further (the
            # weights themselves are decided pair by pair).
            reach += 64 * float(np.finfo(dtype).eps) * (1.0 + max(_absmax(Y), _absmax(S)))
        self._plan_index(Y, reach, algorithm)
        index = self.index
        self.Ys = Ys = index.Y
        # Each point as [x, 1, -|x|^2/2]: the first d + 1 columns give the
        # weighted sum and the weight total in one product; with the last
        # one, the squared distance is one product too (see ``step_tile``).
        self.Ya = _augment_points(Ys, dtype)
        # With sample weights the sums come from rows [w x, w] instead (the
        # same product, another operand), see ``_weighted_rows``.
        self.Yw = None if wts is None else _weighted_rows(Ys, wts[index.order], dtype)
        self.w_total = None if wts is None else float(wts.sum())
        self.w_sorted = None if wts is None else wts[index.order]  # float64, index order
        # float64 data within _GLOBAL_FRAME_MAX bandwidths of their centre
        # expand |q - x|^2 in that frame directly (error <= ~1e-12 in units
        # of the bandwidth squared); otherwise each tile re-centres its
        # candidates on itself to keep the expansion accurate.
        self.global_frame = (dtype == np.float64 and not big
                             and max(_absmax(Ys), _absmax(S)) <= be._GLOBAL_FRAME_MAX)

        # Integer-valued data (pixel coordinates, counts, lattices): points at
        # exactly one bandwidth from a seed are common there, and which side
        # of the boundary they fall on changes the climb. For such data the
        # flat climb is kept in the data's own coordinates, as scikit-learn
        # runs it: each position is the mean of integer rows (the sum is
        # exact in any order, so the mean is bit for bit np.mean's), and
        # every pair whose scaled distance lies within rounding of the
        # boundary is decided by sum_j (x_j - q_j)^2 <= h^2, summed over
        # features in order as scikit-learn's ball tree does.
        if lattice:
            Xo1 = np.empty((n, d + 1))
            Xo1[:, :d] = np.take(X, index.order, axis=0)
            Xo1[:, d] = 1.0
            self.Xo = Xo1  # the coordinates, for the boundary decisions
            if wts is not None:  # [w x, w]: exact for integer data and weights
                self.Xo = Xo1[:, :d].copy()
                Xo1 *= wts[index.order][:, None]
            self.Xo1 = Xo1
            self.posX = np.array(self.seeds, dtype=np.float64)
            self.h = float(bandwidth)
            self.eps = float(np.finfo(dtype).eps)

        m = self.seeds.shape[0]
        self.m = m
        self.pos = S.copy()
        self.n_iter = np.zeros(m, dtype=np.int64)
        self.intensity = np.zeros(m, dtype=np.int64 if wts is None else np.float64)
        self.converged = np.zeros(m, dtype=bool)
        self._local = threading.local()
        self.n_exact = 0  # seed steps that took the exact path
        self.n_wider = 0  # seed steps that took the proof radius's full block
        self._exact = None  # brute force's index, for seeds the proof fails; made on need

    def _plan_index(self, Y, reach, algorithm):
        """The index the steps visit and its reach.

        Gaussian under "auto": the grid, with cells sized so that a seed
        among the data can prove, step by step, that the points outside its
        cells move it by less than rounding (``proven``); a seed that cannot
        takes brute force's exact step (see ``_spatial``).
        """
        n, d, dtype, wts = self.n, self.d, self.dtype, self.wts
        proven = (self.kernel == "gaussian" and algorithm == "auto" and not self.big and n > 0
                  and d <= GRID_MAX_DIM)
        self.w_index = self.full_reach = self.exact_reach = None
        if proven:
            ext = (col_max(Y) - col_min(Y)).astype(np.float64)
            # The bound counts the weight outside reach in units of one row's:
            # with weights, the total in units of the lightest positive one.
            n_eff = n if wts is None else _weight_units(wts)
            proof_reach = gaussian_proof_radius(dtype, n_eff, float(np.sqrt(ext @ ext)))
            span = self.be._PROOF_SPAN[d]
            index = make_index(Y, proof_reach, algorithm, span=span)
            proven = index.name == "grid"
            if proven:
                self.exact_reach, reach, self.full_reach = reach, proof_reach, proof_reach
                self.w_index = None if wts is None else wts[index.order]
                self.cull_cols = [np.ascontiguousarray(index.Y[:, j], dtype=np.float64)
                                  for j in range(d)]
                # The first, narrower block needs the cell counts around it
                # (``block_totals``); without them it would rarely prove.
                if span > 3 and index.block_totals(Y[:0], [0], self.w_index) is not None:
                    reach = (span - 1.5) * index.cell  # span - 1 cells (``_cells_for``)
        if not proven:
            index = make_index(Y, reach, algorithm)
        self.index, self.reach, self.proven = index, reach, proven

    # ------------------------------------------------------------- one step
    def _scratch(self, n_block: int, t: int):
        """This thread's block buffer (at least ``n_block`` elements) and
        ``(t, d + 1)`` product buffer, reused from block to block."""
        local = self._local
        buf = getattr(local, "e", None)
        if buf is None or buf.size < n_block:
            buf = local.e = np.empty(n_block, self.dtype)
        prod = getattr(local, "p", None)
        if prod is None or prod.shape[0] != t:
            prod = local.p = np.empty((t, self.d + 1), self.dtype)
        return buf, prod

    def step(self, idx, index=None, Ya=None, reach=None, prove=None, Yw=None):
        """One shift step for the seed rows ``idx`` over ``index`` (default:
        the plan's): new positions, weight totals and (``prove``) what the
        step left out, per seed (None otherwise): the rows ``[n_out, n_cut,
        r_cut]`` that :meth:`_truncation_bound` takes (the count, or weight,
        of the points not visited; of those culled from the tile; and the
        distance, at least, to the culled ones).

        Outside the global frame a tile is expanded around its own centre,
        so the expansion's rounding grows with the square of the tile's
        span: a tile wider than ``_MAX_TILE_SPAN`` bandwidths (a seed far
        from the others, e.g. an orphan) is split along its widest axis
        and each half stepped on its own.
        """
        if index is None:
            index, Ya, Yw = self.index, self.Ya, self.Yw
        reach = self.reach if reach is None else reach
        prove = self.proven if prove is None else prove
        if not self.global_frame and self.dtype == np.float32 and len(idx) > 1:
            q = self.pos[idx]
            span = q.max(axis=0).astype(np.float64) - q.min(axis=0)
            if span.max() > _MAX_TILE_SPAN:
                order = np.argsort(q[:, int(span.argmax())], kind="stable")
                half = len(idx) // 2
                parts = [(order[:half], self.step(idx[order[:half]], index, Ya, reach, prove, Yw)),
                         (order[half:], self.step(idx[order[half:]], index, Ya, reach, prove, Yw))]
                first = parts[0][1]
                new = np.empty((len(idx),) + first[0].shape[1:], dtype=first[0].dtype)
                wsum = np.empty(len(idx), dtype=first[1].dtype)
                left = None if first[2] is None else np.empty((len(idx), 3))
                for rows, (n_, w_, l_) in parts:
                    new[rows], wsum[rows] = n_, w_
                    if left is not None:
                        left[rows] = l_
                return new, wsum, left
        return self._step_tile(idx, index, Ya, reach, prove, Yw)

    def _step_tile(self, idx, index, Ya, reach, prove, Yw):
        d, dtype, lattice, wts = self.d, self.dtype, self.lattice, self.wts
        q = self.pos[idx]
        sel = index.candidates(q, reach)
        n_cut, r_cut = 0, np.inf
        if prove and len(sel):
            sel, n_cut, r_cut = self._cull(q, sel, index._cells_for(reach) * index.cell)
        cand = _rows(Ya, sel)
        cand_w = None if Yw is None else _rows(Yw, sel)  # [w x, w] of the candidates
        t = len(idx)
        if lattice:
            cand_o = _rows(self.Xo1, sel)
            cand_x = cand_o if wts is None else _rows(self.Xo, sel)
            qX = self.posX[idx]
        if self.global_frame:
            mid = np.zeros(d, dtype)
            qc = q
        else:
            mid = ((q.min(axis=0) + q.max(axis=0)) * 0.5).astype(dtype)
            qc = q - mid
        # e = -|q - x|^2 / 2 = q.x - |q|^2/2 - |x|^2/2 as ONE product:
        # [q, -|q|^2/2, 1] . [x, 1, -|x|^2/2]. Scaling by -1/2 is exact, so
        # e is bitwise -d2/2 of the plain expansion, and the Gaussian
        # weight is exp(e) with no further pass over the block.
        qa = _augment_queries(qc, dtype)
        acc = np.zeros((t, d + 1), dtype=dtype)
        # Tiles are sized in bytes: float32 blocks hold twice the elements.
        budget = self.be.tile_elements * (8 // dtype.itemsize)
        step_cols = max(1, budget // t)
        # Candidates are re-centred on the tile (outside the global frame)
        # a budget's worth of rows at a time, not block by block: the
        # calls per block cost 10-20% of a float32 step at d = 2 (side by
        # side).
        chunk_rows = step_cols * max(1, budget // ((d + 2) * step_cols))
        # Each block lands in the same buffer of this thread, which stays
        # in cache; a fresh block each time was 10-20% slower (float32,
        # d = 2, side by side), though it cost no page faults.
        ebuf, pbuf = self._scratch(t * min(step_cols, len(cand)), t)
        if lattice:
            q_half2 = float(np.abs(qa[:, d]).max())  # the tile's largest |q|^2 / 2
        for c0 in range(0, len(cand), step_cols):
            part = cand[c0:c0 + step_cols]
            # xt: the block's points as columns [x; 1; -|x|^2/2].
            if self.global_frame:
                xt = part.T
            else:
                off = c0 % chunk_rows
                if off == 0:
                    centred = _augment_points_t(cand[c0:c0 + chunk_rows, :d], dtype, mid)
                xt = centred[:, off:off + len(part)]
            if self.big:
                e = _neg_half_sqdist(qc, xt[:d].T)
            else:
                e = _product(qa, xt, out=ebuf[:t * len(part)].reshape(t, len(part)))
            if lattice:
                # Rounding of the scaled expansion: a few ulps of its terms.
                slack = 64 * (d + 2) * self.eps * (1.0 + q_half2
                                                   + float(np.abs(xt[d + 1]).max()))
                rows, cols = np.nonzero(np.abs(e + 0.5) <= slack)
                w = np.greater_equal(e, -0.5, out=e, casting="unsafe")
                if rows.size:
                    w[rows, cols] = within_exact(cand_x[c0 + cols, :d], qX[rows], self.h)
                acc += _product(w, cand_o[c0:c0 + step_cols])
                continue
            if self.kernel == "flat":
                w = np.greater_equal(e, -0.5, out=e, casting="unsafe")
            else:
                if reach2_cut := index.truncate2:
                    # Grid: weights past the truncation radius are dropped.
                    e[e < -0.5 * reach2_cut] = -np.inf
                # Rounding can leave e a few ulps above 0 for coincident
                # points: a weight of 1 + O(eps), harmless, and cheaper
                # than clamping the whole block.
                w = np.exp(e, out=e)
            sums = part[:, :d + 1] if cand_w is None else cand_w[c0:c0 + step_cols]
            acc += _product(w, sums, out=pbuf)
        wsum = acc[:, d]
        ok = wsum > 0
        new = (qX if lattice else q).copy()
        new[ok] = acc[ok, :d] / wsum[ok, None]
        left = None
        if prove:
            # With weights the bound takes the dropped weight (the ratio to
            # the retained weight is what counts), summed in float64.
            n_out = self.n - len(cand) if cand_w is None else \
                max(0.0, self.w_total - float(_rows(self.w_sorted, sel).sum()))
            left = np.empty((t, 3))
            left[:] = (n_out, n_cut, r_cut)
        return new, wsum, left

    def _unproven(self, rows, new, wsum, left, reach):
        """Which of the seeds ``rows``, stepped to ``new`` with retained
        weights ``wsum`` over blocks of ``reach`` (``left``: what the steps
        left out, see :meth:`step`), could not prove their truncation.

        One call for a round's seeds together, after the tiles: the bound is
        a few vectorized passes, where it cost a dozen small NumPy calls per
        tile, all of them holding the GIL between the tiles' products.
        """
        if not len(rows):
            return np.zeros(0, dtype=bool)
        q = self.pos[rows]
        return ~(self._truncation_bound(q, new, wsum, left, reach) <= 1.0)

    def _truncation_bound(self, q, new, wsum, left, reach):
        """How far, in units of the allowed rounding, the points a step
        left out could have moved each seed (<= 1: the step is proven)."""
        dtype, n, wts, w_total, index = self.dtype, self.n, self.wts, self.w_total, self.index
        diff = (new - q).astype(np.float64)
        shift = np.sqrt(np.einsum("ij,ij->i", diff, diff))
        n_out, n_cut, r_cut = left[:, 0], left[:, 1], left[:, 2]
        # Tighter where the cell counts are at hand: the points of the
        # ring of cells just outside the seed's block are at least its
        # clearance away, the rest at least the clearance of the block
        # one cell wider. Either bound proves the step.
        # Points culled from the tile (``_cull``): at least r_cut away,
        # counted with the ring (and in n_out already).
        shells = index.proof_shells(q, index._cells_for(reach), self.w_index)
        if shells is None:
            return gaussian_truncation_bound(
                dtype, n_out, np.minimum(index.clearance(q, reach), r_cut), wsum, shift)
        c1, c2, in1, in2 = shells
        c1 = np.minimum(c1, r_cut)
        total = n if wts is None else w_total
        margin = 0.0 if wts is None else index.block_total_error(w_total)
        ring = np.maximum(in2 - in1, 0) + margin + n_cut
        beyond = np.maximum(total - in2, 0) + margin
        # The three terms in one call: all n_out at c1; the ring at
        # c1 plus the rest at c2.
        b = gaussian_truncation_bound(
            dtype, np.stack([np.broadcast_to(n_out, ring.shape), ring, beyond]),
            np.stack([c1, c1, c2]), wsum, shift)
        return np.minimum(b[0], b[1] + b[2])

    def _cull(self, q, sel, radius):
        """The proven grid's candidates ``sel`` of the tile ``q`` less the
        points farther than ``radius`` from the tile's bounding box (the
        corners of the seeds' blocks; 20-25% of the pairs on hotspot data),
        when that drops a tenth of them: the kept rows, the count (or
        weight) dropped and the distance, at least, from every seed of the
        tile to each dropped point (inf when none is dropped)."""
        r = radius * (1.0 - 1e-9)
        gap2 = np.zeros(len(sel))
        for j in range(self.d):
            x = np.take(self.cull_cols[j], sel)
            qj = q[:, j]
            g = np.maximum(float(qj.min()) - x, x - float(qj.max()))
            np.maximum(g, 0.0, out=g)
            g *= g
            gap2 += g
        keep = gap2 <= r * r
        kept = int(np.count_nonzero(keep))
        if 10 * (len(sel) - kept) < len(sel):
            return sel, 0, np.inf
        # gap2 is rounded (a few ulps): claim a hair less than r.
        r_claim = r * (1.0 - 1e-12)
        if self.wts is None:
            return sel[keep], len(sel) - kept, r_claim
        dropped = float(np.take(self.w_sorted, sel[~keep]).sum()) * (1.0 + 1e-9)
        return sel[keep], dropped, r_claim

    def within(self, q, sel):
        """Float 0/1 matrix of |q - y|^2 <= 1 for the index rows ``sel``."""
        if self.global_frame:
            # The loop's own expansion (``_step_tile``), so the sets agree with it.
            e = _product(_augment_queries(q, self.dtype), _rows(self.Ya, sel).T)
            return np.greater_equal(e, -0.5, out=e, casting="unsafe")
        return self.be._within_unit(q, _rows(self.Ys, sel))

    # ------------------------------------------------------------ the rounds
    def _redo(self, active, redo, new, wsum):
        """Seeds whose proven step failed: the full proof block first, then
        brute force's exact step (an index built on first need)."""
        be = self.be
        if redo.size and self.reach != self.full_reach:
            self.n_wider += redo.size
            sub = active[redo]
            order, tiles = be._plan_tiles(self.index, self.pos[sub], self.full_reach,
                                          by_cost=True)
            sub, redo = sub[order], redo[order]
            again = be._map(lambda ab: self.step(sub[ab[0]:ab[1]], reach=self.full_reach), tiles)
            new[redo] = np.concatenate([r[0] for r in again])
            wsum[redo] = np.concatenate([r[1] for r in again])
            redo = redo[self._unproven(sub, new[redo], wsum[redo],
                                       np.concatenate([r[2] for r in again]), self.full_reach)]
        if redo.size:
            self.n_exact += redo.size
            if self._exact is None:
                ix = SortedIndex(self.Y)
                self._exact = dict(index=ix, reach=self.exact_reach, prove=False,
                                   Ya=_augment_points(ix.Y, self.dtype),
                                   Yw=None if self.wts is None else
                                   _weighted_rows(ix.Y, self.wts[ix.order], self.dtype))
            exact = self._exact
            sub = active[redo]
            order, tiles = be._plan_tiles(exact["index"], self.pos[sub], self.exact_reach)
            sub, redo = sub[order], redo[order]
            again = be._map(lambda ab: self.step(sub[ab[0]:ab[1]], **exact), tiles)
            new[redo] = np.concatenate([r[0] for r in again])
            wsum[redo] = np.concatenate([r[1] for r in again])

    def run(self, max_iter, tol, progress=None) -> ShiftResult:
        """Climb until every seed stopped; the result of the ``shift``."""
        be, m, pos, lattice = self.be, self.m, self.pos, self.lattice
        n_iter, intensity, converged = self.n_iter, self.intensity, self.converged
        thresh2 = float(tol) * float(tol)  # stopping rule, in bandwidth units (inf past 1e154)
        tile_done = getattr(progress, "tile_done", None)  # moves a bar within a round

        def tile_step(idx, total):
            out = self.step(idx)
            if tile_done is not None:
                tile_done(len(idx), total)
            return out

        active = np.arange(m)
        self.prev = prev = pos.copy()  # where each seed's last step started
        self.orphaned = orphaned = np.zeros(m, dtype=bool)
        it = 0
        # Flat kernel: seeds that reach the same position share every later
        # step; only one of them (the leader) keeps climbing.
        leader = np.arange(m) if self.kernel == "flat" else None
        while active.size:
            if leader is not None:
                rep = coincident_rows((self.posX if lattice else pos)[active])
                follows = rep != np.arange(active.size)
                leader[active[follows]] = active[rep[follows]]
                active = active[~follows]
            order, tiles = be._plan_tiles(self.index, pos[active], self.reach,
                                          by_cost=self.proven)
            active = active[order]
            results = be._map(lambda ab: tile_step(active[ab[0]:ab[1]], len(active)), tiles)
            new = np.concatenate([r[0] for r in results])
            wsum = np.concatenate([r[1] for r in results])
            if self.proven:
                left = np.concatenate([r[2] for r in results])
                self._redo(active, np.flatnonzero(self._unproven(active, new, wsum, left,
                                                                 self.reach)), new, wsum)

            orphan = ~(wsum > 0)
            old = pos[active]
            if lattice:
                # scikit-learn's rule: |new - old| <= tol * h, in the data's units.
                oldX = self.posX[active]
                moved = np.sqrt(np.einsum("ij,ij->i", new - oldX, new - oldX))
                done_tol = (moved <= float(tol) * self.h) & ~orphan
                self.posX[active[~orphan]] = new[~orphan]
                with np.errstate(over="ignore"):
                    new = ((new - self.center) * self.inv_h).astype(self.dtype)
            else:
                moved2 = np.einsum("ij,ij->i", new - old, new - old)
                done_tol = (moved2 <= thresh2) & ~orphan
            stop = orphan | done_tol | (it >= max_iter)
            if self.kernel == "flat":
                intensity[active] = np.rint(wsum) if self.wts is None else wsum
            prev[active] = old
            live = active[~orphan]
            pos[live] = new[~orphan]
            converged[active[done_tol]] = True
            orphaned[active[orphan]] = True
            n_iter[active[~stop]] += 1
            active = active[~stop]
            it += 1
            if progress is not None:
                moving = active.size
                if leader is not None:  # a follower moves while its leader does
                    still = np.zeros(m, dtype=bool)
                    still[active] = True
                    moving = np.count_nonzero(still[resolve_leaders(leader)])
                progress(min(it, max_iter), int(moving))

        if leader is not None:
            root = resolve_leaders(leader)
            per_seed = (pos, prev, n_iter, intensity, converged, orphaned)
            for a in per_seed + ((self.posX,) if lattice else ()):
                a[:] = a[root]
        return self._result()

    def _result(self) -> ShiftResult:
        """Modes and intensities from the final positions."""
        be, seeds, orphaned, intensity = self.be, self.seeds, self.orphaned, self.intensity
        if self.lattice:
            # The last step's mean and count, exact already (see above).
            modes = self.posX.astype(self.dtype)
            modes[orphaned] = seeds[orphaned]
        elif self.kernel == "flat":
            live = np.flatnonzero(~orphaned)
            modes = np.empty_like(seeds)
            modes[orphaned] = seeds[orphaned]
            loop_modes = (self.pos[live].astype(np.float64) * self.bandwidth
                          + self.center).astype(self.dtype)
            exact, counts = be._flat_final_means(self.X, self.index, self.prev[live],
                                                 self.within, self.wts)
            lost = counts == 0  # a boundary point lost to rounding: keep the climb's result
            exact[lost] = loop_modes[lost]
            counts[lost] = intensity[live][lost]
            modes[live], intensity[live] = exact, counts
        else:
            # Intensity is counted once, from where each seed's last step began.
            intensity = be._count_unit(self.index, self.prev, self.within, self.wts)
            modes = (self.pos.astype(np.float64) * self.bandwidth + self.center).astype(self.dtype)
        intensity[orphaned] = 0
        return ShiftResult(modes=modes, n_iter=self.n_iter, intensity=intensity,
                           converged=self.converged, algorithm=self.index.name)

"""The CUDA backend's image capability (:class:`~gpumeanshift.backends.base.ImageBackend`):
mean-shift filtering of an image and batched window tracking on the device."""

from __future__ import annotations

import numpy as np

from . import runtime as _rt


class _Images:
    """Mixed into :class:`~.backend.CudaBackend` (uses its runtime and context)."""

    def filter_image(self, image, spatial_radius, range_radius, *, max_iter=5, eps=1.0,
                     round_colors=False):
        """Mean-shift filtering of an image on the device (kernel ``ms_filter_image``).

        The CUDA side of :func:`gpumeanshift.segmentation.mean_shift_filter`
        (which validates the parameters and calls this for a CUDA backend):
        one thread per pixel, its window a patch of the pixel grid, the same
        float operations in the same order as the NumPy path.

        Parameters
        ----------
        image : array of shape (height, width, channels)
            1 to 4 channels. uint8/int8/bool and float32 images are worked on in
            float32 (exact for 8-bit colours), others in float64, as on NumPy.
        spatial_radius, range_radius : float
            Window half-side in pixels (>= 1) and colour radius (>= 0).
        max_iter : int, default=5
        eps : float, default=1.0
        round_colors : bool, default=False

        Returns
        -------
        filtered : array of shape (height, width, channels), float64
            On the runtime's array module (CuPy on a GPU).

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift.testing import emulated_backend
        >>> img = np.zeros((4, 6, 1)); img[:, 3:] = 100.0; img[0, 0] = 4.0
        >>> emulated_backend().filter_image(img, 1, 10)[..., 0].round(2)[0]
        array([  1.  ,   0.67,   0.  , 100.  , 100.  , 100.  ])
        """
        rt = self.runtime
        shape = getattr(image, "shape", None)
        if shape is None or len(shape) != 3:
            raise ValueError(f"image must have shape (height, width, channels), got {shape}")
        h, w, n_ch = (int(v) for v in shape)
        if n_ch not in _rt.FILTER_CHANNELS:
            raise ValueError(f"the CUDA image filter takes 1 to 4 channels, got {n_ch}; "
                             "use backend=None (NumPy) for more")
        if h * w >= 2**31:
            raise ValueError(f"image of {h} x {w} pixels exceeds the kernel's 2**31 pixels")
        sp, sr = float(spatial_radius), float(range_radius)
        if not (sp >= 1.0 and sr >= 0.0 and int(max_iter) >= 1 and float(eps) >= 0.0):
            raise ValueError("need spatial_radius >= 1, range_radius >= 0, max_iter >= 1, eps >= 0")
        kind = np.dtype(image.dtype)
        narrow = kind == np.float32 or (kind.kind in "biu" and kind.itemsize == 1)
        wdt = np.dtype(np.float32 if narrow else np.float64)
        threshold = wdt.type(np.rint(sr * sr) if round_colors else sr * sr)
        with self._ctx():
            src = rt.asarray(image, dtype=wdt)
            colour = self._alloc((h, w, n_ch), np.float64, "filter_image")
            if h * w == 0:
                return colour
            colour[...] = src
            rt.launch(_rt.kernel_name("ms_filter_image", wdt, n_ch), (self._grid(h * w),),
                      (_rt.BLOCK,),
                      (src, np.int32(h), np.int32(w), np.float32(sp), threshold,
                       np.int32(max_iter), np.float64(eps), np.int32(bool(round_colors)), colour),
                      0)
            return colour

    # ------------------------------------------------------- window tracking
    def track_windows(self, prob_image, windows, *, n_iter, eps2):
        """Batched ``cv2.meanShift`` on the device (kernel ``ms_track_windows``).

        The CUDA side of :func:`gpumeanshift.tracking.mean_shift_track`,
        which validates the inputs and calls this for a CUDA backend: one
        thread per window, all iterations in one launch. Integer images are
        summed in int64 (exact, as OpenCV), float images in float64.

        Parameters
        ----------
        prob_image : 2-D array
            Integer or floating weights.
        windows : int array of shape (k, 4)
            ``(x, y, width, height)`` per window, positive sizes.
        n_iter : int
            Iteration limit.
        eps2 : float
            A window stops when ``dx**2 + dy**2 < eps2``.

        Returns
        -------
        iterations : int64 array of shape (k,)
        windows : int64 array of shape (k, 4)
            On the runtime's array module.

        Examples
        --------
        >>> import numpy as np
        >>> from gpumeanshift.testing import emulated_backend
        >>> prob = np.zeros((60, 80), dtype=np.uint8)
        >>> prob[30:40, 50:60] = 255
        >>> it, win = emulated_backend().track_windows(prob, np.array([[35, 20, 20, 20]]),
        ...                                            n_iter=10, eps2=1.0)
        >>> it.tolist(), win.tolist()
        ([2], [[44, 24, 20, 20]])
        """
        rt = self.runtime
        shape = getattr(prob_image, "shape", None)
        if shape is None or len(shape) != 2:
            raise ValueError(f"prob_image must be 2-D, got shape {shape}")
        height, width = (int(v) for v in shape)
        if height * width >= 2**62 or height >= 2**31 or width >= 2**31:
            raise ValueError(f"prob_image of shape {shape} is too large")
        kind = np.dtype(prob_image.dtype)
        if kind.kind in "biu":
            lo = int(prob_image.min()) if prob_image.size else 0
            hi = int(prob_image.max()) if prob_image.size else 0
            if hi > np.iinfo(np.int64).max:
                raise ValueError("integer prob_image values above 2**63 - 1 are not supported")
            i32 = np.iinfo(np.int32)
            pdt = np.int32 if i32.min <= lo and hi <= i32.max else np.int64
            name = "ms_track_windows<int, long long>" if pdt == np.int32 else \
                "ms_track_windows<long long, long long>"
        elif kind.kind == "f":
            pdt, name = np.float64, "ms_track_windows<double, double>"
        else:
            raise TypeError(f"prob_image must hold real numbers, got dtype {kind}")
        with self._ctx():
            img = rt.asarray(prob_image, dtype=pdt)
            win = rt.asarray(windows, dtype=np.int64).copy()
            if win.ndim != 2 or win.shape[1] != 4:
                raise ValueError(f"windows must have shape (k, 4), got {win.shape}")
            k = int(win.shape[0])
            iters = self._alloc((k,), np.int64, "track_windows")
            if k:
                rt.launch(name, (self._grid(k),), (_rt.BLOCK,),
                          (img, np.int32(height), np.int32(width), win, np.int32(k),
                           np.int32(n_iter), np.float64(eps2), iters), 0)
            return iters, win

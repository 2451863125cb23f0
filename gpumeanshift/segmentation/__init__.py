"""Image segmentation: mean shift in the joint spatial-range domain.

Every pixel is a point ``(y, x, colour)``. Its mean-shift window is the patch
of the pixel grid within ``spatial_radius`` of its current position (a square,
as in OpenCV), restricted to the pixels whose *original* colour lies within
``range_radius`` of its current colour (Comaniciu and Meer, 2002, with flat
kernels in both domains). The pixel climbs to a mode of the joint density and
takes the mode's colour: that is the filtered image. Region labelling then
joins 4-connected pixels whose filtered colours are close, and regions smaller
than ``min_region_size`` are merged into their closest-coloured neighbour.

How the NumPy path is vectorized
--------------------------------
The loop runs over the window offsets ``(dy, dx)``, never over pixels: for
one offset, one ``np.take`` per channel gathers the source pixel at
``position + offset`` for every active pixel of a chunk at once. The source is
padded by the window radius with a colour beyond the range radius of any
mean, which never passes the colour test, so the image border costs no
bounds check. Positions are integer
(the window is a patch of the grid); a pixel stops when its position does not
move or when ``|dx| + |dy| + |dc|^2 <= eps`` (OpenCV's rule), and stopped
pixels leave the active set. Chunks of pixels are independent and run on a
small thread pool (NumPy releases the GIL in ``take`` and the ufuncs).
"""

from ._color import COLOR_SPACES, lab_to_rgb, rgb_to_lab
from ._filter import mean_shift_filter
from ._regions import label_regions
from ._segment import segment_image

__all__ = ["COLOR_SPACES", "lab_to_rgb", "label_regions", "mean_shift_filter", "rgb_to_lab",
           "segment_image"]

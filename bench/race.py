"""The speed race: scikit-learn, NumPy brute force, NumPy grid and CUDA on the same data.

A thin entry point; the race lives in :mod:`gpumeanshift.race` so that the
installed command line runs the same code (``gpumeanshift bench``).

    python bench/race.py                       # about a minute on 2 cores
    python bench/race.py --max-n 1e6 --datasets hotspot --plot race.png
    python bench/race.py --help
"""

import sys

from gpumeanshift.race import main

if __name__ == "__main__":
    sys.exit(main())

"""``python -m benchmarks``: the whole suite (see benchmarks/suite.py), or ``python -m benchmarks open``."""

import sys

if len(sys.argv) > 1 and sys.argv[1] == "open":
    from .bench_open import main as open_main

    open_main(sys.argv[2:])
elif len(sys.argv) > 1 and sys.argv[1] == "residency":
    from .bench_residency import main as residency_main

    residency_main(sys.argv[2:])
else:
    from .suite import main

    main(sys.argv[1:])

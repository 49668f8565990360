import sys

from workers.benchmarks.loadtest.runner import main

sys.exit(main())

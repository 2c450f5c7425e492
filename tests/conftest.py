"""Repository-wide test settings.

Torch runs single-threaded in tests: the suite runs on 2-core machines, often beside other
work, and small models train 10-50x slower when two threads contend. Results are unaffected.
"""

import torch

torch.set_num_threads(1)

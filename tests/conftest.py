"""Shared pytest configuration: keep torch single-threaded so tests stay fast on small machines."""

import torch

torch.set_num_threads(1)

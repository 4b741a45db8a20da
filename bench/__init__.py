"""Speed benchmarks and the CUDA-graph update they wrap (not imported by the notebooks)."""

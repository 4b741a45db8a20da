"""Speed benchmarks and the CUDA-graph update they wrap (not imported by the notebooks)."""


def count_arg(low: int = 1):
    """An argparse ``type``: a whole number >= ``low``, else a usage error naming the option.

    >>> parser.add_argument("--runs", type=count_arg(1), default=4)   # --runs 0: "must be >= 1"
    """
    import argparse

    def whole_number(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be >= {low}, not {value}")
        return value

    return whole_number

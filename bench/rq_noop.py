"""rq_noop.py - the no-op job python-rq runs in bench/bench.py's dispatch section."""


def noop():
    return None

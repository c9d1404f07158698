"""Development helpers the tests and the benchmarks share (not part of the installed package):
tiny models built from packaged weights (``models``), real server processes on loopback
(``servers``), third-party test cases read at run time (``mv_cases``), IFEval cases in our own
words (``ifeval_cases``)."""

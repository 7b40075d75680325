"""`python -m evals run SUITE --out DIR` and `python -m evals report DIR`."""

from evals.cli import main

if __name__ == "__main__":
    main()

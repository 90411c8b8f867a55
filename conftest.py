"""Repository-wide pytest set-up (applies to the unit tests and to nbval's notebook runs)."""

# matplotlib builds its font cache on first import and says so on stderr. Inside a notebook
# that message would be an unexpected output under strict nbval on a fresh machine, so build
# the cache here, once, before any notebook runs.
import matplotlib

matplotlib.use("Agg")
import matplotlib.font_manager  # noqa: E402,F401

"""Browser tests: notebooks in real JupyterLab / Notebook 7 driven by Playwright + Debian Chromium."""

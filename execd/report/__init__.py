"""`execd report`: post-trade analysis built from the journal (build), rendered as
terminal tables, JSON and CSV (formats) and a self-contained HTML page (html)."""

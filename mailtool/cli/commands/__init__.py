"""One module per command; each exports ``command`` (a click command or group).

The root group discovers them by file name (``pop_fetch.py`` -> ``pop-fetch``) and imports
one only when it is run or listed, so start-up stays fast.
"""

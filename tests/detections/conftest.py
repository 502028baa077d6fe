# The fixtures are rules folders in Panther's layout: their `*_test.py` files are run by `graphlake rules test`
# (with the folder's global helpers importable), never collected by pytest.
collect_ignore = ["fixtures"]

"""Built-in data sources. Each module registers its classes on import.

Sources backed by optional or heavy libraries import them inside ``load`` so that
listing components stays fast.
"""

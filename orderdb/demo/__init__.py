"""``orderdb demo``: a simulated shop (:mod:`orderdb.demo.shop`) whose parcels go through the
warehouse and carrier simulations (:mod:`orderdb.demo.tracking`, :mod:`orderdb.demo.carrier`)."""

from orderdb.demo.shop import DemoStats, run_demo

__all__ = ["DemoStats", "run_demo"]

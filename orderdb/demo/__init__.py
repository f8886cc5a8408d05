"""``orderdb demo``: a simulated shop (:mod:`orderdb.demo.shop`) whose orders go through the WMS
command queue to the simulated WMS (:mod:`orderdb.integrations.wms.sim`) and whose parcels go
through the simulated carrier (:mod:`orderdb.demo.carrier`)."""

from orderdb.demo.shop import DemoStats, run_demo

__all__ = ["DemoStats", "run_demo"]

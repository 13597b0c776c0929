"""Where the Jupyter server serves plotly's widget module (``regnet_explore.lab`` serves it, ``viz.widgets`` loads
it): the route under the server's base URL and the environment variable that tells a kernel it is served."""

PLOTLY_ROUTE = "regnet-explore/plotly/"
PLOTLY_SERVED = "REGNET_EXPLORE_PLOTLY_SERVED"

"""The bridge: the only owner of Channel Access channels, one per PV for every client. Runs
sources, the startup load and the console relay, and publishes to the channel layer; knows
nothing of hubs, sockets or HTTP.
"""

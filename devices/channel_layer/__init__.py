"""What crosses the channel layer between the bridge and the hubs: message types, group and
topic names, JSON-safe values, the channel reader. The vocabulary of both sides, so it sits
below both and imports nothing of the project.
"""

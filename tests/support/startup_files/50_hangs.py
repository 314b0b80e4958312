import time

time.sleep(3600)  # never finishes: the loader must give up and go on

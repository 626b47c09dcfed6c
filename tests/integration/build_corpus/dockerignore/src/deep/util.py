print("util")

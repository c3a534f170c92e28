print(#arg, arg[0], arg[1], arg[2], select("#", ...), ...)
print(type(string), type(coroutine.running), type(io.write), type(os.time))

-- Prints which signals this process catches and ignores (from /proc), to compare with lua5.3.
for line in io.lines("/proc/self/status") do
    if line:match("^SigCgt") or line:match("^SigIgn") then print(line) end
end

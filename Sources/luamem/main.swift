// luamem: the command people type. `luamem run` runs the script here, in a process without
// Foundation or ArgumentParser, so a tracked process starts in a few milliseconds (test suites
// start hundreds; Benchmarks/startup.py). Every other command, and `luamem run --help`, belongs
// to luamem-cli, which this executes with the same command line: next to this executable (a
// build folder) or in ../libexec/luamem (the archive and the .deb).
import Glibc
import LuamemAgent

let commandLine = CommandLine.arguments

if commandLine.count >= 2, commandLine[1] == "run", !Runner.asksForHelp(commandLine) {
    switch Runner.parse(commandLine, from: 2) {
    case .success(let options):
        do {
            exit(try Runner.run(options, commandLine: commandLine))
        } catch {
            fputs("Error: \(error.message)\n", stderr)
            exit(2)
        }
    case .failure(let error):
        fputs(Runner.luamemRunError(error.message), stderr)
        exit(64)
    }
}

/// This executable's folder, links resolved (a link in /usr/local/bin finds the real one's).
func ownFolder() -> String? {
    var buffer = [CChar](repeating: 0, count: Int(PATH_MAX) + 1)
    let length = readlink("/proc/self/exe", &buffer, Int(PATH_MAX))
    guard length > 0 else { return nil }
    buffer[length] = 0
    let path = String(cString: buffer)
    guard let slash = path.lastIndex(of: "/") else { return nil }
    return String(path[..<slash])
}

let candidates = ownFolder().map { [$0 + "/luamem-cli", $0 + "/../libexec/luamem/luamem-cli"] } ?? []
guard let cli = candidates.first(where: { access($0, X_OK) == 0 }) else {
    fputs(
        "luamem: luamem-cli, which has every command but run, is not next to this executable "
            + "nor in ../libexec/luamem\n", stderr)
    exit(2)
}
var argv = commandLine.map { strdup($0) }
argv.append(nil)
execv(cli, argv)
fputs("luamem: cannot execute \(cli): \(String(cString: strerror(errno)))\n", stderr)
exit(2)

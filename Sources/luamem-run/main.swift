// luamem-run: `luamem run` in a lean process (no Foundation, no ArgumentParser) by a name of its
// own: `luamem-run [options] script.lua [args]`. luamem-cli executes it for `luamem-cli run`,
// with its own command line and its parsed options in LUAMEM_RUN_OPTIONS.
import Glibc
import LuamemAgent

let commandLine = CommandLine.arguments

func fail(_ message: String) -> Never {
    fputs(
        "Error: \(message)\nUsage: luamem-run [--db FILE] [--interval SECONDS] [--build LABEL] "
            + "[--name NAME] [--host LABEL] [--depth N] [--sample BYTES] [--max-sites N] [--max-db-size BYTES] "
            + "[lua5.3 options] [script.lua [args]]\n", stderr)
    exit(64)
}

var options: Runner.Options
if let handed = getenv(Runner.handOverVariable) {
    let text = String(cString: handed)
    unsetenv(Runner.handOverVariable)
    guard let taken = Runner.takeOver(text), taken.firstLuaArgument <= commandLine.count else {
        fail("\(Runner.handOverVariable) is not a set of luamem run options")
    }
    options = taken
} else {
    switch Runner.parse(commandLine, from: 1) {
    case .success(let parsed): options = parsed
    case .failure(let error): fail(error.message)
    }
}
do {
    exit(try Runner.run(options, commandLine: commandLine))
} catch {
    fail(error.message)
}

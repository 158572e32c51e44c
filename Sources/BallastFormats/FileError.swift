/// A problem with a file or folder, naming it: "path: problem". The one error type of every reader and
/// writer of files on disk (safetensors, checkpoints, atomic writes), so callers print one kind of message.
public struct FileError: Error, CustomStringConvertible, Equatable {
    public let path: String
    public let problem: String

    public init(path: String, problem: String) {
        self.path = path
        self.problem = problem
    }

    public var description: String { "\(path): \(problem)" }
}

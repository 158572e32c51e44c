import BallastTestSupport
import BallastTransport
import Foundation
import Testing

@Suite("CURVE keys")
struct CurveKeyTests {
    func folder(_ files: [String]) throws -> String {
        let dir = scratchDirectory()
        for f in files { try "x\n".write(toFile: dir + "/" + f, atomically: true, encoding: .utf8) }
        return dir
    }

    @Test("an actor uses actor, else the folder's one actor-NODE pair, else the pair it names; ambiguity is an error")
    func actorKeyChoice() throws {
        #expect(try CurveSecurity.actorKeyName(in: try folder(["server.public", "actor.public", "actor.secret", "actor-n1.secret"])) == "actor")
        #expect(try CurveSecurity.actorKeyName(in: try folder(["server.public", "actor-n1.public", "actor-n1.secret"])) == "actor-n1")
        let two = try folder(["actor-n1.secret", "actor-n2.secret"])
        #expect(try CurveSecurity.actorKeyName(in: two, explicit: "actor-n2") == "actor-n2")
        #expect { try CurveSecurity.actorKeyName(in: two) } throws: { "\($0)".contains("actor-n1, actor-n2") && "\($0)".contains("--curve-key") }
        #expect { try CurveSecurity.actorKeyName(in: try folder(["server.public", "learner.secret"])) } throws: { "\($0)".contains("no actor key pair") }
    }

    @Test("roles follow key file names")
    func roles() {
        #expect(["learner", "coordinator", "actor", "actor-n1", "actors", "client", "n1"].map(CurveSecurity.role(ofKeyNamed:))
                == ["learner", "coordinator", "actor", "actor", "client", "client", "client"])
    }
}

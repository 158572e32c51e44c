import CZMQ

/// libzmq access point. The distributed issue builds sockets, multipart and polling here; today it
/// reports the linked library version so that the build proves libzmq links.
public enum ZMQ {
    public static var version: (major: Int, minor: Int, patch: Int) {
        var a: Int32 = 0, b: Int32 = 0, c: Int32 = 0
        zmq_version(&a, &b, &c)
        return (Int(a), Int(b), Int(c))
    }
}

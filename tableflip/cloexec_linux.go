package tableflip

// recvCloexec: on Linux the net package receives descriptors with
// MSG_CMSG_CLOEXEC, so they arrive close-on-exec without a system call each.
const recvCloexec = true

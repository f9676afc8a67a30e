//! What rayvmm (the supervisor) and ray-gpu (the jailed GPU process) share, and nothing else:
//! the control tube, the messages carried on it, the escape-probe protocol, and the display
//! descriptions both sides exchange.
//!
//! No renderer, no device model and no vhost-user code lives here, so the unjailed supervisor
//! links none of them. Everything the GPU process sends is untrusted: the types here carry
//! claims that the supervisor checks.

pub mod display;
pub mod messages;
pub mod probe;
pub mod tube;

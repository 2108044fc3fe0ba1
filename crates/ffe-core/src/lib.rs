//! ffe-core: all real logic of ffe-ha lives here.

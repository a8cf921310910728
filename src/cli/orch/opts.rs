//! What several orch commands take: the run they act on, an agent or queue to send to.

use crate::error::Result;
use crate::names::Address;

#[derive(clap::Args, Debug, Default)]
pub struct RunOpt {
    /// The run (default: the current run)
    #[arg(long, value_name = "NAME")]
    pub run: Option<String>,
}

pub fn address(text: Option<&str>) -> Result<Option<Address>> {
    text.map(Address::parse).transpose()
}

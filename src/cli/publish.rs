//! `dane-audit publish DOMAIN --cert NEW.pem (--add | --remove-stale)`: a
//! rollover's first and last steps alone, for operators who keep their own
//! flow: add the records the new certificate needs next to the current
//! ones (under the same check as `rollover`), or remove the records that
//! match nothing served now (never one for `--cert`, never the last one).

use super::exit::{CliError, Exit};
use super::net_args::NetArgs;
use super::new_cert::NewCertArgs;
use super::rollover::{Rollover, Settings, UpdateArgs};
use crate::report::Format;

#[derive(clap::Args, Debug)]
#[command(after_help = "\
Exit codes: 0 done (or nothing to do); 4 removed on the primary, not yet gone from every \
server; 1 refused (a check failed, or the server refused the UPDATE); 2 usage, input or \
output error; 3 could not determine (DNS failure, the primary does not answer).")]
#[group(id = "action", required = true, multiple = false)]
pub struct PublishArgs {
    /// The mail domain whose MX hosts' TLSA records change.
    #[arg(value_name = "DOMAIN")]
    pub domain: String,
    /// Add the records the certificate needs (`--records`) next to the current ones.
    #[arg(long, group = "action")]
    pub add: bool,
    /// Remove the records that match nothing served now (keeping those for --cert).
    #[arg(long, group = "action")]
    pub remove_stale: bool,
    #[command(flatten)]
    pub new: NewCertArgs,
    #[command(flatten)]
    pub update: UpdateArgs,
    /// Output format: text or json.
    #[arg(long, value_enum, default_value_t = Format::Text)]
    pub format: Format,
    /// Also accept the domain itself as a DANE-TA certificate name (RFC 7672 §3.2.3 local policy).
    #[arg(long)]
    pub accept_nexthop_name: bool,
    #[command(flatten)]
    pub net: NetArgs,
}

pub async fn run(args: &PublishArgs) -> Result<Exit, CliError> {
    let settings = Settings {
        domain: &args.domain,
        new: &args.new,
        update: &args.update,
        net: &args.net,
        state: None,
        deploy: None,
        deploy_timeout: 0,
        deploy_settle: 0,
        retire_after: Some(0),
        margin: 0,
        poll_interval: 0,
        format: args.format,
        accept_nexthop_name: args.accept_nexthop_name,
    };
    let mut r = Rollover::prepare(settings).await?;
    r.command = "publish";
    let outcome = if args.add {
        r.add().await?
    } else {
        r.remove_stale().await?
    };
    r.print(&outcome)?;
    Ok(outcome.exit())
}

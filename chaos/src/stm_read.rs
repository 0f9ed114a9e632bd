//! The controller's read of the STM workload's final state. Through Mazurka, unlike the lock
//! campaign's referee: the values are Mazurka envelopes (and may be chunked), which only its own
//! read path decodes. Read once every worker has exited, with `deref_sync` (a read from the
//! server, not a replica).

use std::time::Duration;

use mazurka::{Atom, Error, Ref, Session};

use crate::check::stm::{EpochState, StmState};
use crate::workload::stm::{
    account_path, counter_path, parse_epoch, skew_path, Account, ACCOUNTS, PAIRS, ROOT,
};
use crate::ChaosError;

/// Reads every epoch's accounts, counter and pairs; refs never created are `None`.
///
/// # Errors
/// [`ChaosError::Zk`] if the servers cannot be reached or a value cannot be read.
pub async fn read_final(connect: &str, chroot: &str) -> Result<StmState, ChaosError> {
    let err = |what: String, e: Error| ChaosError::Zk(format!("{what}: {e}"));
    let session = Session::builder(connect.to_owned())
        .chroot(chroot.to_owned())
        .session_timeout(Duration::from_secs(4))
        .connect()
        .await
        .map_err(|e| err(format!("connect to {connect}"), e))?;
    let mut state = StmState::new();
    let epochs = match session.list_children(ROOT).await {
        Ok(names) => names,
        Err(Error::ZooKeeper {
            code: mazurka::ZkErrorCode::NoNode,
            ..
        }) => Vec::new(),
        Err(e) => return Err(err(format!("list {ROOT}"), e)),
    };
    for epoch in epochs.iter().filter_map(|n| parse_epoch(n)) {
        let mut st = EpochState::default();
        for i in 0..ACCOUNTS {
            st.accounts
                .push(read_ref::<Account>(&session, account_path(epoch, i)).await?);
        }
        st.counter = match Atom::<Vec<u64>>::open(&session, counter_path(epoch)).await {
            Ok(atom) => Some(atom.deref_sync().await.map_err(|e| err(counter_path(epoch), e))?),
            Err(e) if absent(&e) => None,
            Err(e) => return Err(err(counter_path(epoch), e)),
        };
        for k in 0..PAIRS {
            let x = read_ref::<i64>(&session, skew_path(epoch, k, 0)).await?;
            let y = read_ref::<i64>(&session, skew_path(epoch, k, 1)).await?;
            st.pairs.push((x, y));
        }
        state.insert(epoch, st);
    }
    let _ = session.close().await;
    Ok(state)
}

async fn read_ref<T: mazurka::Value>(session: &Session, path: String) -> Result<Option<T>, ChaosError> {
    match Ref::<T>::open(session, path.clone()).await {
        Ok(r) => r
            .deref_sync()
            .await
            .map(Some)
            .map_err(|e| ChaosError::Zk(format!("{path}: {e}"))),
        Err(e) if absent(&e) => Ok(None),
        Err(e) => Err(ChaosError::Zk(format!("{path}: {e}"))),
    }
}

/// Whether opening failed because the ref was never created (a worker killed mid-setup).
fn absent(e: &Error) -> bool {
    matches!(
        e,
        Error::ZooKeeper {
            code: mazurka::ZkErrorCode::NoNode,
            ..
        }
    )
}

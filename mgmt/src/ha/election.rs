//! The VRRP version 3 state machine (RFC 5798 section 6.4, with RFC 9568's
//! updates), with time and input as arguments and what to do as output,
//! so every transition is tested without a socket or a clock.
//!
//! rvs's additions, as keepalived has them: a FAULT state (a tracked
//! condition fails: the node gives up mastership and stays silent until it
//! clears), a preempt delay, and a gate on preemption: a node that joins
//! may not take over from a running master before it has its sessions
//! (the bulk sync), so no established flow is lost when it does.
use std::net::IpAddr;
use std::time::{Duration, Instant};

/// A node's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Not started.
    Init,
    /// Listening to a master, ready to take over.
    Backup,
    /// Owning the virtual addresses and advertising.
    Master,
    /// A tracked condition failed: no mastership.
    Fault,
}

impl Role {
    /// keepalived's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            Role::Init => "INIT",
            Role::Backup => "BACKUP",
            Role::Master => "MASTER",
            Role::Fault => "FAULT",
        }
    }

    /// Its number in the `rvs_ha_state` metric.
    pub fn number(self) -> u8 {
        match self {
            Role::Init => 0,
            Role::Backup => 1,
            Role::Master => 2,
            Role::Fault => 3,
        }
    }
}

/// What the node must do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    /// Send an advertisement with this priority.
    Advertise(u8),
    /// Take the virtual addresses (forward, answer, announce).
    BecomeMaster,
    /// Give them up and listen.
    BecomeBackup,
    /// Give them up and stay silent.
    BecomeFault,
}

/// The configuration of the election.
#[derive(Clone, Debug)]
pub struct Params {
    /// This node's priority (1..=255).
    pub priority: u8,
    /// Its advertisement interval, centiseconds.
    pub interval_cs: u16,
    /// Whether it takes over from a lower-priority master.
    pub preempt: bool,
    /// How long after start it may not preempt.
    pub preempt_delay: Duration,
    /// Its primary address (ties between equal priorities go to the
    /// higher address).
    pub address: IpAddr,
}

/// The state machine.
#[derive(Debug)]
pub struct Election {
    p: Params,
    role: Role,
    /// The interval the master advertises (learned from its adverts).
    master_interval_cs: u16,
    /// Backup: when the master is declared down.
    down_at: Option<Instant>,
    /// Master: when the next advertisement is due.
    advert_at: Option<Instant>,
    /// Not before this may the node preempt.
    preempt_from: Instant,
    /// The bulk sync gate: false until the node has its sessions.
    synced: bool,
    /// The master as last heard (address, priority).
    master: Option<(IpAddr, u8)>,
    /// Since when the node has its role, and how many changes it made.
    since: Instant,
    transitions: u64,
}

fn cs(c: u32) -> Duration {
    Duration::from_millis(u64::from(c) * 10)
}

impl Election {
    /// A node that has not started.
    pub fn new(p: Params, now: Instant) -> Election {
        Election {
            master_interval_cs: p.interval_cs,
            preempt_from: now + p.preempt_delay,
            p,
            role: Role::Init,
            down_at: None,
            advert_at: None,
            synced: true,
            master: None,
            since: now,
            transitions: 0,
        }
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The master as last heard (ourselves when master).
    pub fn master(&self) -> Option<(IpAddr, u8)> {
        if self.role == Role::Master {
            Some((self.p.address, self.p.priority))
        } else {
            self.master
        }
    }

    /// Since when the node has its role.
    pub fn since(&self) -> Instant {
        self.since
    }

    /// Role changes so far.
    pub fn transitions(&self) -> u64 {
        self.transitions
    }

    /// This node's priority.
    pub fn priority(&self) -> u8 {
        self.p.priority
    }

    /// Sets the bulk sync gate: a node that joins calls it with false
    /// and with true once its sessions arrived.
    pub fn set_synced(&mut self, synced: bool) {
        self.synced = synced;
    }

    fn skew(&self) -> Duration {
        cs(rvs_wire::vrrp::skew_cs(self.p.priority, self.master_interval_cs))
    }

    fn master_down(&self) -> Duration {
        cs(rvs_wire::vrrp::master_down_cs(self.p.priority, self.master_interval_cs))
    }

    fn enter(&mut self, role: Role, now: Instant, out: &mut Vec<Action>) {
        if self.role != role {
            self.role = role;
            self.since = now;
            self.transitions += 1;
            out.push(match role {
                Role::Master => Action::BecomeMaster,
                Role::Fault => Action::BecomeFault,
                Role::Backup | Role::Init => Action::BecomeBackup,
            });
        }
    }

    fn become_master(&mut self, now: Instant, out: &mut Vec<Action>) {
        out.push(Action::Advertise(self.p.priority));
        self.advert_at = Some(now + cs(u32::from(self.p.interval_cs)));
        self.down_at = None;
        self.enter(Role::Master, now, out);
    }

    fn become_backup(&mut self, now: Instant, out: &mut Vec<Action>) {
        self.advert_at = None;
        self.down_at = Some(now + self.master_down());
        self.enter(Role::Backup, now, out);
    }

    /// RFC 5798 6.4.1: the address owner becomes master at once, any
    /// other node backup.
    pub fn start(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.p.priority == 255 {
            self.become_master(now, &mut out);
        } else {
            self.master_interval_cs = self.p.interval_cs;
            self.become_backup(now, &mut out);
        }
        out
    }

    /// When [`Election::on_timer`] must be called next.
    pub fn deadline(&self) -> Option<Instant> {
        match self.role {
            Role::Master => self.advert_at,
            Role::Backup => self.down_at,
            Role::Init | Role::Fault => None,
        }
    }

    /// Timers: a master advertises; a backup that heard no master for the
    /// master-down interval takes over.
    pub fn on_timer(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        match self.role {
            Role::Master if self.advert_at.is_some_and(|t| now >= t) => {
                out.push(Action::Advertise(self.p.priority));
                self.advert_at = Some(now + cs(u32::from(self.p.interval_cs)));
            }
            Role::Backup if self.down_at.is_some_and(|t| now >= t) => {
                self.master = None;
                self.become_master(now, &mut out);
            }
            _ => {}
        }
        out
    }

    /// Whether this backup may take over now from a master of `prio`.
    fn may_preempt(&self, prio: u8, now: Instant) -> bool {
        self.p.preempt && prio < self.p.priority && now >= self.preempt_from && self.synced
    }

    /// An advertisement from `from` with `prio` and `interval_cs`, for our
    /// VRID, already authenticated when authentication is on.
    pub fn on_advert(&mut self, now: Instant, from: IpAddr, prio: u8, interval_cs: u16) -> Vec<Action> {
        let mut out = Vec::new();
        match self.role {
            Role::Backup => {
                if prio == 0 {
                    // The master stops: take over after the skew only.
                    self.down_at = Some(now + self.skew());
                    self.master = None;
                } else if !self.may_preempt(prio, now) {
                    self.master_interval_cs = interval_cs.max(1);
                    self.down_at = Some(now + self.master_down());
                    self.master = Some((from, prio));
                }
                // else: a lower-priority master we preempt: let the
                // master-down timer run out.
            }
            Role::Master => {
                if prio == 0 {
                    // Another master stopping: assert ourselves at once.
                    out.push(Action::Advertise(self.p.priority));
                    self.advert_at = Some(now + cs(u32::from(self.p.interval_cs)));
                } else if prio > self.p.priority || (prio == self.p.priority && from > self.p.address) {
                    self.master_interval_cs = interval_cs.max(1);
                    self.master = Some((from, prio));
                    self.become_backup(now, &mut out);
                }
                // else: a lower-priority (or lower-address) one: ignored;
                // it backs off on our next advertisement.
            }
            Role::Init | Role::Fault => {
                if prio != 0 {
                    self.master = Some((from, prio));
                }
            }
        }
        out
    }

    /// A tracked condition failed (true) or cleared (false).
    pub fn set_fault(&mut self, now: Instant, fault: bool) -> Vec<Action> {
        let mut out = Vec::new();
        match (fault, self.role) {
            (true, Role::Master) => {
                out.push(Action::Advertise(0));
                self.advert_at = None;
                self.enter(Role::Fault, now, &mut out);
            }
            (true, Role::Backup | Role::Init) => {
                self.down_at = None;
                self.enter(Role::Fault, now, &mut out);
            }
            (false, Role::Fault) => self.become_backup(now, &mut out),
            _ => {}
        }
        out
    }

    /// A clean stop: a master says so with priority 0, so a backup takes
    /// over after its skew time instead of the master-down interval.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        let mut out = Vec::new();
        if self.role == Role::Master {
            out.push(Action::Advertise(0));
        }
        self.advert_at = None;
        self.down_at = None;
        self.enter(Role::Init, now, &mut out);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(prio: u8, last: u8, now: Instant) -> Election {
        Election::new(
            Params {
                priority: prio,
                interval_cs: 10,
                preempt: true,
                preempt_delay: Duration::ZERO,
                address: IpAddr::from([198, 18, 0, last]),
            },
            now,
        )
    }

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([198, 18, 0, last])
    }

    #[test]
    fn a_lone_backup_takes_over_after_the_master_down_interval() {
        let t0 = Instant::now();
        let mut n = node(100, 2, t0);
        assert_eq!(n.start(t0), vec![Action::BecomeBackup]);
        // 3 x 100 ms + skew (156/256 x 100 ms = 60 ms).
        assert_eq!(n.deadline(), Some(t0 + Duration::from_millis(360)));
        assert!(n.on_timer(t0 + Duration::from_millis(359)).is_empty());
        assert_eq!(n.on_timer(t0 + Duration::from_millis(360)), vec![Action::Advertise(100), Action::BecomeMaster]);
        assert_eq!(n.role(), Role::Master);
        assert_eq!(n.on_timer(t0 + Duration::from_millis(460)), vec![Action::Advertise(100)]);
    }

    #[test]
    fn the_owner_is_master_at_once() {
        let t0 = Instant::now();
        let mut n = node(255, 2, t0);
        assert_eq!(n.start(t0), vec![Action::Advertise(255), Action::BecomeMaster]);
    }

    #[test]
    fn adverts_from_a_better_master_keep_a_backup_listening() {
        let t0 = Instant::now();
        let mut n = node(100, 2, t0);
        n.start(t0);
        for k in 1..20u64 {
            let t = t0 + Duration::from_millis(100 * k);
            assert!(n.on_advert(t, ip(3), 150, 10).is_empty());
            assert!(n.on_timer(t).is_empty());
        }
        assert_eq!(n.role(), Role::Backup);
        assert_eq!(n.master(), Some((ip(3), 150)));
    }

    #[test]
    fn priority_zero_hands_over_after_the_skew_only() {
        let t0 = Instant::now();
        let mut n = node(100, 2, t0);
        n.start(t0);
        n.on_advert(t0, ip(3), 150, 10);
        n.on_advert(t0 + Duration::from_millis(50), ip(3), 0, 10);
        assert_eq!(n.deadline(), Some(t0 + Duration::from_millis(50 + 60)));
        assert_eq!(n.on_timer(t0 + Duration::from_millis(110)), vec![Action::Advertise(100), Action::BecomeMaster]);
    }

    #[test]
    fn a_master_yields_to_higher_priority_and_to_the_higher_address_on_a_tie() {
        let t0 = Instant::now();
        let mut n = node(100, 5, t0);
        n.start(t0);
        n.on_timer(t0 + Duration::from_secs(1));
        assert_eq!(n.role(), Role::Master);
        assert!(n.on_advert(t0 + Duration::from_secs(1), ip(9), 90, 10).is_empty(), "lower priority: ignored");
        assert!(n.on_advert(t0 + Duration::from_secs(1), ip(4), 100, 10).is_empty(), "tie, lower address: ignored");
        assert_eq!(n.on_advert(t0 + Duration::from_secs(1), ip(6), 100, 10), vec![Action::BecomeBackup]);
        assert_eq!(n.role(), Role::Backup);
    }

    #[test]
    fn preemption_waits_for_the_delay_and_the_bulk_sync() {
        let t0 = Instant::now();
        let mut n = Election::new(
            Params { priority: 200, interval_cs: 10, preempt: true, preempt_delay: Duration::from_secs(2), address: ip(2) },
            t0,
        );
        n.start(t0);
        n.set_synced(false);
        // A lower-priority master: before the delay and the sync, the node
        // defers (its timer is reset by every advert).
        let mut t = t0;
        for _ in 0..30 {
            t += Duration::from_millis(100);
            n.on_advert(t, ip(3), 100, 10);
            assert!(n.on_timer(t).is_empty());
        }
        assert_eq!(n.role(), Role::Backup, "3 s: the delay passed but not the sync");
        n.set_synced(true);
        // Now it lets the master-down timer run out despite the adverts.
        let mut took = None;
        for _ in 0..10 {
            t += Duration::from_millis(100);
            n.on_advert(t, ip(3), 100, 10);
            if n.on_timer(t).contains(&Action::BecomeMaster) {
                took = Some(t);
                break;
            }
        }
        assert!(took.is_some(), "preempted once synced");
        // Without preempt it would have deferred for ever.
        let mut q = Election::new(Params { preempt: false, ..n.p.clone() }, t0);
        q.start(t0);
        for k in 1..50u64 {
            q.on_advert(t0 + Duration::from_millis(100 * k), ip(3), 100, 10);
            assert!(q.on_timer(t0 + Duration::from_millis(100 * k)).is_empty());
        }
    }

    #[test]
    fn fault_silences_a_master_and_clearing_it_returns_to_backup() {
        let t0 = Instant::now();
        let mut n = node(255, 2, t0);
        n.start(t0);
        assert_eq!(n.set_fault(t0, true), vec![Action::Advertise(0), Action::BecomeFault]);
        assert_eq!(n.deadline(), None);
        assert_eq!(n.set_fault(t0, false), vec![Action::BecomeBackup]);
        assert_eq!(n.transitions(), 3);
        assert_eq!(n.shutdown(t0), vec![Action::BecomeBackup]);
    }

    #[test]
    fn a_stopping_master_sends_priority_zero() {
        let t0 = Instant::now();
        let mut n = node(255, 2, t0);
        n.start(t0);
        assert_eq!(n.shutdown(t0), vec![Action::Advertise(0), Action::BecomeBackup]);
    }
}

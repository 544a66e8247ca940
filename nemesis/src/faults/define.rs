//! The macro that turns the list of fault kinds in `faults/mod.rs` into
//! types and exhaustive dispatch.

/// Builds the fault-kind types and their dispatch from the list of kinds.
/// Each line is `FIELD: Variant(Type)`: `FIELD` is the kind's field in
/// `ActiveFaults`, `Variant` its name in `FaultKind` and `Fault`,
/// `Type` its [`FaultType`](super::FaultType).
macro_rules! fault_kinds {
    ($($(#[$doc:meta])* $field:ident: $variant:ident($ty:ty),)+) => {
        /// The kinds of fault the nemesis can inject, in registration order.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum FaultKind {
            $($variant,)+
        }

        /// One fault with its argument.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Fault {
            $($variant(<$ty as FaultType>::Arg),)+
        }

        /// The faults that are in effect now, one field per kind.
        #[derive(Debug, Clone, Default, PartialEq, Eq)]
        pub struct ActiveFaults {
            $($(#[$doc])* pub $field: <$ty as FaultType>::State,)+
        }

        impl ActiveFaults {
            /// True when no fault is in effect.
            pub fn is_empty(&self) -> bool {
                $(!<$ty as FaultType>::is_active(&self.$field))&&+
            }
        }

        impl FaultKind {
            /// Every kind, in registration order.
            pub const ALL: [FaultKind; [$(stringify!($variant)),+].len()] =
                [$(FaultKind::$variant),+];

            /// The name on the command line and in event names.
            pub fn name(self) -> &'static str {
                match self { $(FaultKind::$variant => <$ty as FaultType>::NAME,)+ }
            }
            /// One line for `--help`.
            pub fn about(self) -> &'static str {
                match self { $(FaultKind::$variant => <$ty as FaultType>::ABOUT,)+ }
            }
            /// The schedule verb that starts it.
            pub fn start_verb(self) -> &'static str {
                match self { $(FaultKind::$variant => <$ty as FaultType>::START_VERB,)+ }
            }
            /// The schedule verb that stops it, if it has one.
            pub fn stop_verb(self) -> Option<&'static str> {
                match self { $(FaultKind::$variant => <$ty as FaultType>::STOP_VERB,)+ }
            }
            /// Its argument in a schedule.
            pub fn arg(self) -> Option<ArgGrammar> {
                match self { $(FaultKind::$variant => <$ty as FaultType>::ARG,)+ }
            }
            /// The deployment capabilities it needs.
            pub fn needs(self) -> &'static [Capability] {
                match self { $(FaultKind::$variant => <$ty as FaultType>::NEEDS,)+ }
            }
            /// Its place in [`crate::Nemesis::heal_all`]'s order.
            pub fn heal_order(self) -> u8 {
                match self { $(FaultKind::$variant => <$ty as FaultType>::HEAL_ORDER,)+ }
            }
            /// Its colour and label in reports.
            pub fn style(self) -> FaultStyle {
                match self { $(FaultKind::$variant => <$ty as FaultType>::STYLE,)+ }
            }
            /// A fault of this kind with the argument written `arg`.
            pub fn parse_fault(self, arg: &str) -> Result<Fault, String> {
                match self {
                    $(FaultKind::$variant => <$ty as FaultType>::parse_arg(arg).map(Fault::$variant),)+
                }
            }
            /// The default schedule's random fault of this kind.
            pub fn random_fault(self, rng: &mut StdRng) -> Fault {
                match self {
                    $(FaultKind::$variant => Fault::$variant(<$ty as FaultType>::random_arg(rng)),)+
                }
            }
            /// Whether `active` holds something of this kind to undo.
            pub fn is_active(self, active: &ActiveFaults) -> bool {
                match self {
                    $(FaultKind::$variant => <$ty as FaultType>::is_active(&active.$field),)+
                }
            }
            pub(crate) fn stop(self, ctx: &FaultContext) -> Outcome {
                match self { $(FaultKind::$variant => <$ty as FaultType>::stop(ctx),)+ }
            }
        }

        impl Fault {
            /// Its kind.
            pub fn kind(self) -> FaultKind {
                match self { $(Fault::$variant(_) => FaultKind::$variant,)+ }
            }
            /// Its argument's name, as in a schedule.
            pub fn arg_name(self) -> String {
                match self { $(Fault::$variant(a) => <$ty as FaultType>::arg_name(a),)+ }
            }
            pub(crate) fn start(self, ctx: &FaultContext) -> Outcome {
                match self { $(Fault::$variant(a) => <$ty as FaultType>::start(ctx, a),)+ }
            }
        }
    };
}

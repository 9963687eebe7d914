//! The operations Berth serves, named by the `X-Amz-Target` header.

/// The target prefix of every ECS operation.
pub const TARGET_PREFIX: &str = "AmazonEC2ContainerServiceV20141113.";

macro_rules! operations {
    ($($name:ident),* $(,)?) => {
        /// An ECS operation.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Operation { $($name),* }

        impl Operation {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Operation] = &[$(Operation::$name),*];

            /// The operation's name (`RunTask`).
            pub fn name(self) -> &'static str {
                match self { $(Operation::$name => stringify!($name)),* }
            }

            /// The operation an `X-Amz-Target` value names.
            pub fn from_target(target: &str) -> Option<Operation> {
                let name = target.strip_prefix(TARGET_PREFIX)?;
                match name {
                    $(stringify!($name) => Some(Operation::$name),)*
                    _ => None,
                }
            }
        }
    };
}

operations! {
    CreateCluster, DescribeClusters, ListClusters, UpdateCluster, UpdateClusterSettings,
    DeleteCluster,
    RegisterTaskDefinition, DescribeTaskDefinition, ListTaskDefinitions,
    ListTaskDefinitionFamilies, DeregisterTaskDefinition, DeleteTaskDefinitions,
    RegisterContainerInstance, DeregisterContainerInstance, DescribeContainerInstances,
    ListContainerInstances, UpdateContainerInstancesState,
    PutAttributes, ListAttributes, DeleteAttributes,
    RunTask, StartTask, StopTask, DescribeTasks, ListTasks,
    TagResource, UntagResource, ListTagsForResource,
    ListAccountSettings, PutAccountSetting, PutAccountSettingDefault, DeleteAccountSetting,
    DiscoverPollEndpoint, SubmitTaskStateChange, SubmitContainerStateChange,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(
            Operation::from_target("AmazonEC2ContainerServiceV20141113.RunTask"),
            Some(Operation::RunTask)
        );
        assert_eq!(
            Operation::from_target("AmazonEC2ContainerServiceV20141113.Nope"),
            None
        );
        assert_eq!(Operation::from_target("RunTask"), None);
        for op in Operation::ALL {
            let t = format!("{TARGET_PREFIX}{}", op.name());
            assert_eq!(Operation::from_target(&t), Some(*op));
        }
    }
}

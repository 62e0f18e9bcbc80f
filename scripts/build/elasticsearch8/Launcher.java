// Embedded single-node Elasticsearch 8.x for scripts/stack (built from Maven Central jars, see pom.xml).
// Usage: java -cp '<lib>/*:<classes>' Launcher key=value...   (each arg is one node setting)
//
// Since 8.11 a Node is built by the package-private NodeConstruction, and classpath plugins need
// a PluginsService that is not the plugin-directory one: StackNode (package org.elasticsearch.node)
// and StackPluginsService (package org.elasticsearch.plugins) do what the test framework's MockNode
// and MockPluginsService do. Modules that are not on Maven Central are missing; RestPlugin below
// stands in for the two REST endpoints of theirs that clients rely on:
//   GET /                       (module rest-root since 8.9): the same document, from Build/Version
//   GET /_data_stream[/{name}]  (module data-streams): read-only, from the cluster state; the main
//                               fields only. Data streams themselves are server core: a `create`
//                               into a name whose index template has "data_stream": {} makes one.
import java.util.Collection;
import java.util.List;
import java.util.Map;
import java.util.TreeMap;
import java.util.concurrent.CountDownLatch;
import java.util.function.Predicate;
import java.util.function.Supplier;
import org.elasticsearch.Build;
import org.elasticsearch.Version;
import org.elasticsearch.client.internal.node.NodeClient;
import org.elasticsearch.cluster.ClusterState;
import org.elasticsearch.cluster.health.ClusterStateHealth;
import org.elasticsearch.cluster.metadata.DataStream;
import org.elasticsearch.cluster.metadata.MetadataIndexTemplateService;
import org.elasticsearch.cluster.metadata.IndexNameExpressionResolver;
import org.elasticsearch.cluster.node.DiscoveryNodes;
import org.elasticsearch.cluster.service.ClusterService;
import org.elasticsearch.common.Strings;
import org.elasticsearch.common.io.stream.NamedWriteableRegistry;
import org.elasticsearch.common.regex.Regex;
import org.elasticsearch.common.logging.LogConfigurator;
import org.elasticsearch.common.settings.ClusterSettings;
import org.elasticsearch.common.settings.IndexScopedSettings;
import org.elasticsearch.common.settings.Settings;
import org.elasticsearch.common.settings.SettingsFilter;
import org.elasticsearch.features.NodeFeature;
import org.elasticsearch.index.Index;
import org.elasticsearch.index.IndexNotFoundException;
import org.elasticsearch.index.IndexVersion;
import org.elasticsearch.node.InternalSettingsPreparer;
import org.elasticsearch.node.Node;
import org.elasticsearch.node.StackNode;
import org.elasticsearch.plugins.ActionPlugin;
import org.elasticsearch.plugins.Plugin;
import org.elasticsearch.rest.BaseRestHandler;
import org.elasticsearch.rest.RestController;
import org.elasticsearch.rest.RestHandler;
import org.elasticsearch.rest.RestRequest;
import org.elasticsearch.rest.RestResponse;
import org.elasticsearch.rest.RestStatus;
import org.elasticsearch.transport.netty4.Netty4Plugin;
import org.elasticsearch.xcontent.XContentBuilder;

public class Launcher {
    /** Stand-ins for `GET /` and `GET /_data_stream` (see the top of this file). */
    public static final class RestPlugin extends Plugin implements ActionPlugin {
        private volatile ClusterService clusterService;

        @Override
        public Collection<?> createComponents(PluginServices services) {
            clusterService = services.clusterService();
            return List.of();
        }

        @Override
        public Collection<RestHandler> getRestHandlers(
                Settings settings,
                NamedWriteableRegistry namedWriteableRegistry,
                RestController restController,
                ClusterSettings clusterSettings,
                IndexScopedSettings indexScopedSettings,
                SettingsFilter settingsFilter,
                IndexNameExpressionResolver indexNameExpressionResolver,
                Supplier<DiscoveryNodes> nodesInCluster,
                Predicate<NodeFeature> clusterSupportsFeature) {
            String nodeName = Node.NODE_NAME_SETTING.get(settings);
            return List.of(rootHandler(nodeName), dataStreamHandler());
        }

        private RestHandler rootHandler(String nodeName) {
            return new BaseRestHandler() {
                @Override
                public String getName() {
                    return "stack_main_action";
                }

                @Override
                public List<Route> routes() {
                    return List.of(new Route(RestRequest.Method.GET, "/"), new Route(RestRequest.Method.HEAD, "/"));
                }

                @Override
                public boolean canTripCircuitBreaker() {
                    return false;
                }

                @Override
                protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
                    return channel -> {
                        XContentBuilder b = channel.newBuilder();
                        if (request.hasParam("pretty") == false) {
                            b.prettyPrint().lfAtEnd();
                        }
                        Build build = Build.current();
                        b.startObject();
                        b.field("name", nodeName);
                        b.field("cluster_name", clusterService.getClusterName().value());
                        b.field("cluster_uuid", clusterService.state().metadata().clusterUUID());
                        b.startObject("version")
                                .field("number", build.qualifiedVersion())
                                .field("build_flavor", "default")
                                .field("build_type", build.type().displayName())
                                .field("build_hash", build.hash())
                                .field("build_date", build.date())
                                .field("build_snapshot", build.isSnapshot())
                                .field("lucene_version", IndexVersion.current().luceneVersion().toString())
                                .field("minimum_wire_compatibility_version", build.minWireCompatVersion())
                                .field("minimum_index_compatibility_version", build.minIndexCompatVersion())
                                .endObject();
                        b.field("tagline", "You Know, for Search");
                        b.endObject();
                        channel.sendResponse(new RestResponse(RestStatus.OK, b));
                    };
                }
            };
        }

        private RestHandler dataStreamHandler() {
            return new BaseRestHandler() {
                @Override
                public String getName() {
                    return "stack_get_data_streams_action";
                }

                @Override
                public List<Route> routes() {
                    return List.of(
                            new Route(RestRequest.Method.GET, "/_data_stream"),
                            new Route(RestRequest.Method.GET, "/_data_stream/{name}"));
                }

                @Override
                protected RestChannelConsumer prepareRequest(RestRequest request, NodeClient client) {
                    String[] names = Strings.splitStringByCommaToArray(request.param("name", "*"));
                    return channel -> {
                        ClusterState state = clusterService.state();
                        Map<String, DataStream> all = state.metadata().dataStreams();
                        Map<String, DataStream> found = new TreeMap<>();
                        for (String name : names) {
                            if (Regex.isSimpleMatchPattern(name)) {
                                all.forEach((n, ds) -> {
                                    if (Regex.simpleMatch(name, n) && (ds.isHidden() == false || name.startsWith("."))) {
                                        found.put(n, ds);
                                    }
                                });
                            } else if (all.containsKey(name)) {
                                found.put(name, all.get(name));
                            } else {
                                channel.sendResponse(new RestResponse(channel, new IndexNotFoundException(name)));
                                return;
                            }
                        }
                        XContentBuilder b = channel.newBuilder();
                        b.startObject().startArray("data_streams");
                        for (DataStream ds : found.values()) {
                            String[] backing = ds.getIndices().stream().map(Index::getName).toArray(String[]::new);
                            b.startObject();
                            b.field("name", ds.getName());
                            b.startObject("timestamp_field").field("name", DataStream.TIMESTAMP_FIELD_NAME).endObject();
                            b.startArray("indices");
                            for (Index index : ds.getIndices()) {
                                b.startObject()
                                        .field("index_name", index.getName())
                                        .field("index_uuid", index.getUUID())
                                        .endObject();
                            }
                            b.endArray();
                            b.field("generation", ds.getGeneration());
                            if (ds.getMetadata() != null) {
                                b.field("_meta", ds.getMetadata());
                            }
                            b.field("status", new ClusterStateHealth(state, backing).getStatus().name());
                            String template = MetadataIndexTemplateService.findV2Template(
                                    state.metadata(), ds.getName(), ds.isHidden());
                            if (template != null) {
                                b.field("template", template);
                            }
                            b.field("hidden", ds.isHidden());
                            b.field("system", ds.isSystem());
                            b.field("allow_custom_routing", ds.isAllowCustomRouting());
                            b.field("replicated", ds.isReplicated());
                            if (ds.getIndexMode() != null) {
                                b.field("index_mode", ds.getIndexMode().getName());
                            }
                            b.endObject();
                        }
                        b.endArray().endObject();
                        channel.sendResponse(new RestResponse(RestStatus.OK, b));
                    };
                }
            };
        }
    }

    public static void main(String[] args) throws Exception {
        LogConfigurator.configureESLogging(); // the org.elasticsearch.logging provider (log4j)
        Settings.Builder b = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("expected key=value, got " + arg);
            b.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Settings settings = b.build();
        Node node = new StackNode(
                InternalSettingsPreparer.prepareEnvironment(
                        settings, Map.of(), null, () -> settings.get("node.name", "stack")),
                List.of(Netty4Plugin.class, RestPlugin.class));
        CountDownLatch done = new CountDownLatch(1);
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            try {
                node.close();
            } catch (Exception e) {
                e.printStackTrace();
            } finally {
                done.countDown();
            }
        }, "stack-shutdown"));
        node.start();
        System.out.println("[launcher] node started");
        done.await();
    }
}

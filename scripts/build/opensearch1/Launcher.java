// Embedded single-node OpenSearch 1.3 for scripts/stack (built from Maven Central jars, see pom.xml).
// Same API as 2.x here: the protected Node(Environment, plugin classes, forbidPrivateIndexSettings).
// Usage: java -cp '<lib>/*:<classes>' Launcher key=value...   (each arg is one node setting)
import java.util.List;
import java.util.Map;
import java.util.concurrent.CountDownLatch;
import org.opensearch.common.settings.Settings;
import org.opensearch.node.InternalSettingsPreparer;
import org.opensearch.node.Node;
import org.opensearch.transport.Netty4Plugin;

public class Launcher {
    static final class EmbeddedNode extends Node {
        EmbeddedNode(Settings settings) {
            super(
                    InternalSettingsPreparer.prepareEnvironment(
                            settings, Map.of(), null, () -> settings.get("node.name", "stack")),
                    List.of(Netty4Plugin.class),
                    true);
        }
    }

    public static void main(String[] args) throws Exception {
        Settings.Builder b = Settings.builder();
        for (String arg : args) {
            int eq = arg.indexOf('=');
            if (eq <= 0) throw new IllegalArgumentException("expected key=value, got " + arg);
            b.put(arg.substring(0, eq), arg.substring(eq + 1));
        }
        Node node = new EmbeddedNode(b.build());
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
